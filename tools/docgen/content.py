"""Random but valid document content.

Every function takes a `numpy.random.Generator`; nothing reads global state, so a given
generator state always yields the same record.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

import checks
import data


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _date_between(rng: np.random.Generator, lo: dt.date, hi: dt.date) -> dt.date:
    return lo + dt.timedelta(days=int(rng.integers((hi - lo).days + 1)))


def _add_years(d: dt.date, years: int) -> dt.date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def person_name(rng: np.random.Generator, male: bool) -> str:
    surname = _pick(rng, data.COMPOUND_SURNAMES) if rng.random() < 0.02 else _pick(rng, data.SURNAMES)
    pool = data.GIVEN_MALE if male else data.GIVEN_FEMALE
    pool = pool + data.GIVEN_ANY
    n = 1 if rng.random() < 0.3 else 2
    given = "".join(_pick(rng, pool) for _ in range(n))
    return surname + given


def region(rng: np.random.Generator):
    return _pick(rng, data.REGIONS)


def street_address(rng: np.random.Generator, reg, rural_ok: bool = True) -> str:
    """A full address starting with province/city/district names, 14 to 33 characters."""
    province, city, district, _ = reg
    head = city + district if province == city else province + city + district
    if rural_ok and rng.random() < 0.15:
        town = _pick(rng, data.VILLAGE_STEMS)
        tail = f"{town}镇{_pick(rng, data.VILLAGE_STEMS)}村{int(rng.integers(1, 13))}组{int(rng.integers(1, 99))}号"
        return head + tail
    road = _pick(rng, data.ROAD_STEMS) + _pick(rng, data.ROAD_SUFFIX)
    no = f"{int(rng.integers(1, 999))}号"
    r = rng.random()
    if r < 0.55:
        estate = _pick(rng, data.ESTATES) + _pick(rng, data.ESTATE_SUFFIX)
        flat = f"{int(rng.integers(1, 40))}幢"
        if rng.random() < 0.5:
            flat += f"{int(rng.integers(1, 6))}单元"
        flat += f"{int(rng.integers(1, 33))}{int(rng.integers(1, 5)):02d}室"
        return head + road + no + estate + flat
    if r < 0.8:
        return head + road + no + f"{int(rng.integers(1, 30))}幢{int(rng.integers(1, 25))}{int(rng.integers(1, 9)):02d}室"
    return head + road + no


def police_authority(reg) -> str:
    province, city, district, _ = reg
    short = district[:-2] if district.endswith("新区") else district[:-1]
    if len(short) < 2:
        short = district
    return f"{city}公安局{short}分局"


def id_number(rng: np.random.Generator, area: str, birth: dt.date, male: bool) -> str:
    seq = int(rng.integers(0, 100)) * 10 + int(rng.integers(0, 5)) * 2 + (1 if male else 0)
    body = f"{area}{birth:%Y%m%d}{seq:03d}"
    return body + checks.id_check_char(body)


@dataclass
class Person:
    name: str
    male: bool
    nation: str
    birth: dt.date
    address: str
    id_number: str
    authority: str
    valid_from: dt.date
    valid_to: dt.date | None  # None: 长期

    def front_truth(self) -> dict:
        return {
            "name": self.name,
            "gender": "男" if self.male else "女",
            "nation": self.nation,
            "birth_date": self.birth.isoformat(),
            "address": self.address,
            "id_number": self.id_number,
        }

    def back_truth(self) -> dict:
        return {
            "issuing_authority": self.authority,
            "valid_from": self.valid_from.isoformat(),
            "valid_to": self.valid_to.isoformat() if self.valid_to else "长期",
        }


def person(rng: np.random.Generator, today: dt.date) -> Person:
    male = bool(rng.random() < 0.5)
    name = person_name(rng, male)
    nation = "汉" if rng.random() < data.NATION_WEIGHT_HAN else _pick(rng, data.NATIONS[1:])
    birth = _date_between(rng, dt.date(1945, 1, 1), _add_years(today, -18))
    reg = region(rng)
    addr = street_address(rng, reg)
    number = id_number(rng, reg[3], birth, male)
    # the card in hand: issued at some renewal after the 16th birthday, still valid or long-term
    sixteen = _add_years(birth, 16)
    lo = max(sixteen, _add_years(today, -19), dt.date(2005, 1, 1))
    valid_from = _date_between(rng, lo, today - dt.timedelta(days=30))
    age = valid_from.year - birth.year - ((valid_from.month, valid_from.day) < (birth.month, birth.day))
    years = 10 if age <= 25 else 20 if age <= 45 else None
    valid_to = _add_years(valid_from, years) if years else None
    if valid_to is not None and valid_to < today:  # renewed: move the issue date forward
        valid_from = _date_between(rng, max(lo, _add_years(today, -years)), today - dt.timedelta(days=30))
        valid_to = _add_years(valid_from, years)
    return Person(name, male, nation, birth, addr, number, police_authority(reg), valid_from, valid_to)


_DIGITS_UPPER = "零壹贰叁肆伍陆柒捌玖"


def capital_upper(wan: int) -> str:
    """Registered capital in financial upper-case numerals, e.g. 500 -> 伍佰万元整."""
    if not 1 <= wan <= 99999:
        raise ValueError(wan)
    units = ((10000, "万"), (1000, "仟"), (100, "佰"), (10, "拾"), (1, ""))
    out, zero = "", False
    for value, unit in units:
        d = wan // value % 10
        if d == 0:
            zero = bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += _DIGITS_UPPER[d] + unit
    if out.endswith("万"):  # 10000万 and up: 壹万万 reads 壹亿
        return out[:-1] + "亿元整"
    return out + "万元整"


def capital_printed(rng: np.random.Generator, wan: int, upper: str) -> str:
    """Registered capital as a licence prints it. Most carry financial numerals (`upper`,
    e.g. 伍佰万元整 or 人民币伍佰万元整); others Arabic digits in one of the usual forms."""
    form = int(rng.choice(5, p=(0.5, 0.15, 0.15, 0.1, 0.1)))
    if form == 0:
        return upper
    if form == 1:
        return f"{wan}万元人民币"
    if form == 2:
        return f"人民币{wan}万元"
    if form == 3:
        return f"{wan}.000000万人民币"
    return f"{wan}万元"


def credit_code(rng: np.random.Generator, area: str, sole_trader: bool) -> str:
    cs = checks.CREDIT_CHARSET
    kind = "92" if sole_trader else "91"
    if sole_trader and rng.random() < 0.6:
        org_body = "".join(_pick(rng, cs) for _ in range(8))
        org = org_body + _pick(rng, cs)
    else:
        lead = _pick(rng, "35MA") if rng.random() < 0.5 else _pick(rng, "0123456789")
        if lead == "M":
            org_body = "MA" + "".join(_pick(rng, "0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(6))
        else:
            org_body = lead + "".join(_pick(rng, "0123456789") for _ in range(7))
        org = org_body + checks.org_check_char(org_body)
    body = kind + area + org
    if any(c not in cs for c in body):  # org check may be a char outside the set; fall back
        body = kind + area + org_body + "0"
    return body + checks.credit_check_char(body)


def _cn_date(d: dt.date) -> str:
    return f"{d.year}年{d.month:02d}月{d.day:02d}日"


@dataclass
class Licence:
    name: str
    credit_code: str
    type: str
    legal_person: str
    legal_label: str  # 法定代表人 / 经营者 / 投资人
    capital: str | None
    established: dt.date
    term_to: dt.date | None  # None: no end date
    term_style: str  # "range", "open" (X至长期), "long" (长期)
    address: str
    address_label: str  # 住所 / 经营场所
    scope: str
    authority: str
    issued: dt.date

    @property
    def term_printed(self) -> str:
        if self.term_style == "long":
            return "长期"
        end = _cn_date(self.term_to) if self.term_to else "长期"
        return f"{_cn_date(self.established)}至{end}"

    @property
    def term_truth(self) -> str:
        if self.term_style == "long":
            return "长期"
        end = self.term_to.isoformat() if self.term_to else "长期"
        return f"{self.established.isoformat()}至{end}"

    def printed(self) -> dict:
        """The text of each truth field as the licence prints it (dates in 年月日)."""
        t = self.truth()
        t["established"] = _cn_date(self.established)
        t["term"] = self.term_printed
        return t

    def truth(self) -> dict:
        t = {
            "name": self.name,
            "credit_code": self.credit_code,
            "type": self.type,
            "legal_person": self.legal_person,
        }
        if self.capital:
            t["registered_capital"] = self.capital
        t.update({
            "established": self.established.isoformat(),
            "term": self.term_truth,
            "address": self.address,
            "scope": self.scope,
        })
        return t


def licence(rng: np.random.Generator, today: dt.date) -> Licence:
    r, acc = rng.random(), 0.0
    for ctype, share, has_capital in data.COMPANY_TYPES:
        acc += share
        if r < acc:
            break
    sole = ctype == "个体工商户"
    reg = region(rng)
    province, city, district, area = reg
    city_short = city[:-1] if city.endswith("市") else city
    industry = _pick(rng, tuple(data.INDUSTRIES))
    brand = "".join(_pick(rng, data.BRAND_CHARS) for _ in range(2))
    if sole:
        name = f"{city}{district}{brand}{_pick(rng, data.SHOP_SUFFIX)}"
        if rng.random() < 0.3:
            name = f"{district}{brand}{_pick(rng, data.SHOP_SUFFIX)}"
    elif ctype == "个人独资企业":
        name = f"{city_short}{brand}{industry}中心"
    elif ctype.startswith("股份"):
        name = f"{city_short}{brand}{industry}股份有限公司"
    elif rng.random() < 0.2:
        name = f"{brand}（{city_short}）{industry}有限公司"
    else:
        name = f"{city_short}{brand}{industry}有限公司"
    male = bool(rng.random() < 0.65)
    legal = person_name(rng, male)
    legal_label = "经营者" if sole else "投资人" if ctype == "个人独资企业" else "法定代表人"
    wan = int(_pick(rng, data.CAPITAL_WAN)) if has_capital else 0
    capital = capital_upper(wan) if has_capital else None
    if capital and rng.random() < 0.3:
        capital = "人民币" + capital
    established = _date_between(rng, dt.date(1998, 1, 1), today - dt.timedelta(days=20))
    if sole:
        style = "long"
        term_to = None
    else:
        style = _pick(rng, ("range", "range", "open", "long"))
        term_to = None
        if style == "range":
            years = int(_pick(rng, (10, 20, 20, 30, 50)))
            while _add_years(established, years) <= today:  # a licence in use has not run out
                years += 10
            term_to = _add_years(established, years) - dt.timedelta(days=1)
    address = street_address(rng, reg, rural_ok=False)
    if rng.random() < 0.3:
        address = address.replace("室", "室（自主申报）") if rng.random() < 0.3 else address
    items = list(data.INDUSTRIES[industry])
    n = int(rng.integers(3, min(8, len(items)) + 1))
    order = rng.permutation(len(items))[:n]
    chosen = [items[int(i)] for i in sorted(order)]
    scope = "一般项目：" + "；".join(chosen) + "。" + data.SCOPE_TAIL
    if rng.random() < 0.35:
        scope += "许可项目：" + _pick(rng, ("食品经营", "道路货物运输（不含危险货物）", "建设工程施工", "第三类医疗器械经营")) + "。" + data.SCOPE_TAIL_PERMIT
    if sole and rng.random() < 0.5:
        scope = "、".join(chosen[:3]) + "。"
    authority = f"{city}{district}市场监督管理局" if province == city or rng.random() < 0.7 else f"{city}市场监督管理局"
    issued = _date_between(rng, established, today - dt.timedelta(days=1))
    code = credit_code(rng, area, sole)
    if capital:  # drawn last so that the other fields of a seed stay as they were
        capital = capital_printed(rng, wan, capital)
    return Licence(name, code, ctype, legal, legal_label, capital, established, term_to, style,
                   address, "经营场所" if sole else "住所", scope, authority, issued)
