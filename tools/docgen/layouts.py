"""Business licence (营业执照) layouts.

Real licences come in several designs: the landscape copy (副本) with two columns of fields,
the portrait original (正本) with one column, the older style with `名　　称：` labels and
colons, and the ruled table of an e-licence print-out. Each item draws its layout, fonts and
small variations (value size, line spacing, label spacing) from the layout generator, so a
seed reproduces them.

Every value is printed whole: a long value wraps, and when the lines do not fit the space
the design gives them the text is set smaller, never cut. `render_licence` returns, besides
the image, the text it printed for each field, which the generator compares with the truth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from content import Licence
from render import (Fonts, LayoutOverflow, Sheet, emblem, guilloche, ornate_border, qr_like, seal, to_image,
                    wrap_strict)

LAYOUTS = ("duplicate-2col", "original-portrait", "colon-2014", "table-grid")

# label and value faces per layout, with weights (the old style was set in sans-serif faces)
LABEL_FONTS = {
    "duplicate-2col": (("serif-bold", 4), ("sans-bold", 2), ("kai", 2), ("zenhei", 2)),
    "original-portrait": (("serif-bold", 4), ("sans-bold", 2), ("kai", 2), ("zenhei", 2)),
    "colon-2014": (("sans-bold", 3), ("sans", 2), ("zenhei", 3)),
    "table-grid": (("sans-bold", 3), ("zenhei", 2), ("serif-bold", 2), ("kai", 1)),
}
VALUE_FONTS = {
    "duplicate-2col": (("serif", 4), ("ming", 2), ("kai", 2), ("sans", 1), ("zenhei", 1)),
    "original-portrait": (("serif", 4), ("ming", 2), ("kai", 2), ("sans", 1), ("zenhei", 1)),
    "colon-2014": (("sans", 3), ("zenhei", 3)),
    "table-grid": (("sans", 3), ("zenhei", 2), ("ming", 2), ("serif", 2), ("kai", 1)),
}
LICENCE_FONTS = tuple(sorted({k for t in (LABEL_FONTS, VALUE_FONTS) for v in t.values() for k, _ in v}))
INK = (25, 25, 25)
# (all values, the scope) against the design's sizes, tried in turn: a long scope is set smaller
# first, then everything shrinks
SCALES = tuple([(1.0, round(1.0 - 0.04 * k, 2)) for k in range(6)]
               + [(round(1.0 - 0.03 * k, 2), round(0.8 * (1.0 - 0.03 * k), 3)) for k in range(1, 15)])


def _size(scale, field: str) -> float:
    return scale[1] if field == "scope" else scale[0]


@dataclass
class Style:
    layout: str
    label_font: str
    value_font: str
    value_scale: float   # value size against the design's, 0.9-1.1
    line_pitch: float    # distance between the lines of one value, in value sizes
    label_spacing: str   # how labels are spaced (per layout: justified, ideographic spaces, plain ...)
    variant: int         # layout-specific arrangement

    def manifest(self) -> dict:
        d = asdict(self)
        d.pop("variant")
        return d


def _weighted(rng: np.random.Generator, options) -> str:
    names = [n for n, _ in options]
    w = np.asarray([x for _, x in options], np.float64)
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def choose_style(rng: np.random.Generator, layouts=LAYOUTS) -> Style:
    layout = layouts[int(rng.integers(len(layouts)))]
    label = _weighted(rng, LABEL_FONTS[layout])
    value = _weighted(rng, VALUE_FONTS[layout])
    scale = round(float(rng.uniform(0.9, 1.1)), 3)
    pitch = round(float(rng.uniform(1.38, 1.62)), 3)
    spacing = {
        "duplicate-2col": ("justified",),
        "original-portrait": ("justified", "justified", "justified-4"),
        "colon-2014": ("ideographic", "justified", "plain"),
        "table-grid": ("centred", "left", "justified"),
    }[layout]
    return Style(layout, label, value, scale, pitch, spacing[int(rng.integers(len(spacing)))],
                 int(rng.integers(4)))


def render_licence(lic: Licence, fonts: Fonts, rng: np.random.Generator, style: Style | None = None,
                   flat: bool = False):
    """Draw `lic`. Returns (RGBA image, sheet): `sheet.drawn` is the text printed per truth key,
    `sheet.marks` every piece of text with its box. `flat` skips the security print (faster)."""
    style = style or Style("duplicate-2col", "serif-bold", "serif", 1.0, 1.48, "justified", 0)
    draw = {"duplicate-2col": _duplicate_2col, "original-portrait": _original_portrait,
            "colon-2014": _colon_2014, "table-grid": _table_grid}[style.layout]
    img, sheet = draw(lic, fonts, rng, style, flat)
    return img.convert("RGBA"), sheet


# --- shared pieces ---------------------------------------------------------------------------

def _date(d) -> str:
    return f"{d.year}年{d.month:02d}月{d.day:02d}日"


def _fields(lic: Licence) -> dict:
    """truth key -> (label, value as printed) of every field row, in the new-style order."""
    rows = {
        "name": ("名称", lic.name),
        "type": ("类型", lic.type),
        "legal_person": (lic.legal_label, lic.legal_person),
        "scope": ("经营范围", lic.scope),
        "registered_capital": ("注册资本", lic.capital),
        "established": ("成立日期", _date(lic.established)),
        "term": ("营业期限", lic.term_printed),
        "address": (lic.address_label, lic.address),
    }
    if not lic.capital:
        del rows["registered_capital"]
    return rows


def _fit(fonts: Fonts, key: str, size: float, text: str, width: float, max_lines: int | None,
         floor: float = 0.8):
    """The largest size from `size` down to `floor * size` at which `text` wraps into at most
    `max_lines` lines of `width`; (font, lines). LayoutOverflow when none does."""
    s = int(round(size))
    while True:
        font = fonts.get(key, s)
        lines = wrap_strict(text, font, width)
        if max_lines is None or len(lines) <= max_lines:
            return font, lines
        s -= 1
        if s < size * floor or s < 10:
            raise LayoutOverflow(f"{text[:12]}… needs {len(lines)} lines")


def _best(attempt, what: str):
    """Run `attempt(scale)` on a dry sheet for each scale in turn; the first that fits."""
    for scale in SCALES:
        try:
            return scale, attempt(scale)
        except LayoutOverflow:
            continue
    raise LayoutOverflow(f"{what}: the fields do not fit even at {SCALES[-1][0]:.0%} size")


def _paste_seal(img: Image.Image, sheet: Sheet, fonts: Fonts, lic: Licence, r: int, cx: float, cy: float,
                rng) -> None:
    st = seal(fonts, lic.authority, r, rng)
    sx, sy = int(round(cx - st.width / 2)), int(round(cy - st.height / 2))
    region = img.crop((sx, sy, sx + st.width, sy + st.height))
    img.paste(ImageChops.multiply(region, st), (sx, sy))
    sheet.refresh()
    sheet.obstacle("seal", (cx - r, cy - r, cx + r, cy + r))


def _qr(img: Image.Image, sheet: Sheet, fonts: Fonts, rng, x: int, y: int, box: int, cap_size: float,
        caption: bool = True) -> tuple:
    qr = qr_like(25, box, rng)
    img.paste(Image.merge("RGB", (qr, qr, qr)), (x, y))
    sheet.refresh()
    sheet.obstacle("qr", (x, y, x + qr.width, y + qr.height))
    bottom = y + qr.height
    if caption:
        cap = fonts.get("sans", cap_size)
        for k, line in enumerate(("扫描二维码登录‘国家企业信用", "信息公示系统’了解更多登记、", "备案、许可、监管信息。")):
            sheet.text((x + qr.width / 2, bottom + cap_size * 0.9 + cap_size * 1.4 * k), line, cap, (40, 40, 40),
                       anchor="ma")
        bottom += cap_size * 0.9 + cap_size * 1.4 * 3
    return x, y, x + qr.width, bottom


def _emblem(sheet: Sheet, cx: float, cy: float, r: float) -> None:
    if not sheet.dry:
        emblem(sheet.d, cx, cy, r)
    sheet.obstacle("emblem", (cx - r, cy - r, cx + r, cy + r * 0.6))


def _title(sheet: Sheet, fonts: Fonts, key: str, cx: float, top: float, size: float, gap: float,
           text: str = "营业执照") -> float:
    font = fonts.get(key, size)
    tw = sum(font.getlength(c) for c in text) + (len(text) - 1) * gap
    sheet.text(((sheet.size[0] - tw) / 2 if cx is None else cx - tw / 2, top), text, font, (20, 20, 20),
               spacing=gap, anchor="la")
    return top + size * 1.25


def _footer(sheet: Sheet, fonts: Fonts, x0: float, x1: float, y: float, size: float) -> None:
    grey = (50, 50, 50)
    sheet.text((x0, y), "国家企业信用信息公示系统网址：http://www.gsxt.gov.cn", fonts.get("sans", size * 1.2), grey,
               role="footer", anchor="la")
    small = fonts.get("sans", size)
    sheet.text((x0, y + size * 1.75), "市场主体应当于每年1月1日至6月30日通过国家企业信用信息公示系统报送公示年度报告。",
               small, grey, role="footer", anchor="la")
    sheet.text((x1, y + size * 1.75), "国家市场监督管理总局监制", small, grey, role="footer", anchor="ra")


def _label(sheet: Sheet, mode: str, xy, text: str, font, width: float) -> float:
    """Draw a row label; returns its right end."""
    if mode.startswith("justified") and len(text) > 1:
        sheet.justified(xy, text, width, font)
        return xy[0] + width
    return sheet.text(xy, text, font, INK, role="label", spacing=font.size * 0.12 if mode == "spaced" else 0)


def _value_rows(sheet: Sheet, fonts: Fonts, st: Style, scale: float, rows, x: float, y: float,
                label_font, label_w: float, value_x: float, value_w: float, limits: dict,
                size: float, scope_size: float, gap: float) -> float:
    """Label-left/value-right rows stacked down from `y` (the top of the first row); returns
    the bottom of the last. `limits` caps the lines of a field (None: as many as needed)."""
    for field, (label, value) in rows:
        base_size = (scope_size if field == "scope" else size) * st.value_scale * _size(scale, field)
        font, lines = _fit(fonts, st.value_font, base_size, value, value_w, limits.get(field, 1))
        pitch = font.size * st.line_pitch * (0.95 if field == "scope" else 1.0)
        asc = max(font.getmetrics()[0], label_font.getmetrics()[0])
        base = y + asc
        _label(sheet, st.label_spacing, (x, base), label, label_font, label_w)
        for k, line in enumerate(lines):
            sheet.text((value_x, base + k * pitch), line, font, INK, role="value", field=field)
        y = base + (len(lines) - 1) * pitch + font.getmetrics()[1] + gap * scale[0]
    return y


# --- 副本, landscape, two columns (the design the field reader was written against) -----------

def _duplicate_2col(lic: Licence, fonts: Fonts, rng, st: Style, flat: bool):
    w, h = 1500, 1060
    arr = guilloche(w, h, rng, [(236, 222, 205), (240, 216, 208)], (251, 248, 240), density=0.8,
                    rosette=(w / 2, h * 0.58, w * 0.32, (236, 214, 200)), flat=flat)
    img = to_image(arr)
    ornate_border(img)
    sh = Sheet(img)
    jx, jy = rng.uniform(-6, 6, 2)  # printer registration: the field block shifts a little
    label_size = float(rng.uniform(25, 29))
    label_extra = float(rng.uniform(0, 14))
    seal_dx, seal_dy = rng.uniform(-25, 25), rng.uniform(-15, 15)

    _emblem(sh, w / 2, 118, 46)
    _title(sh, fonts, "serif-bold", w / 2, 165, 112, 40)
    sh.text((w / 2, 325), "（副  本）", fonts.get("serif", 30), (30, 30, 30), anchor="mm")
    sh.text((w - 330, 325), f"副本编号：{int(rng.integers(1, 4))}-{int(rng.integers(1, 4))}",
            fonts.get("serif", 20), (30, 30, 30), anchor="lm")
    sh.text((110, 120), "统一社会信用代码", fonts.get("sans-bold", 24), (20, 20, 20), anchor="la")
    sh.text((110, 156), lic.credit_code, fonts.get("sans-bold", 30, mono=True), (20, 20, 20),
            role="value", field="credit_code", spacing=2, anchor="la")
    _qr(img, sh, fonts, rng, w - 270, 84, 5, 13)

    lab = fonts.get(st.label_font, label_size)
    lw = 5 * label_size + 8 + label_extra  # label column: five characters wide
    left_x, right_x = 110 + jx, 790 + jx
    left_val, right_val = left_x + lw + 30, right_x + lw + 30
    left_w, right_w = right_x - left_val - 40, w - 105 - right_val
    ay = h - 240  # 登记机关
    seal_r = 105
    seal_c = (right_x + 409 + seal_dx, ay + 30 + seal_dy)
    fields = _fields(lic)
    left = [(k, fields[k]) for k in ("name", "type", "legal_person", "scope")]
    right = [(k, fields[k]) for k in ("registered_capital", "established", "term", "address") if k in fields]
    limits = {"name": 2, "type": 2, "legal_person": 1, "scope": None, "term": 2, "address": 3}

    def attempt(scale, sheet=None):
        sheet = sheet or Sheet(None, (w, h), dry=True)
        y0 = 385 + jy
        bl = _value_rows(sheet, fonts, st, scale, left, left_x, y0, lab, lw, left_val, left_w, limits,
                         27, 24, 22)
        br = _value_rows(sheet, fonts, st, scale, right, right_x, y0, lab, lw, right_val, right_w, limits,
                         27, 24, 22)
        if bl > h - 128 or br > seal_c[1] - seal_r - 6:
            raise LayoutOverflow("column too long")
        return sheet

    scale, _ = _best(attempt, "duplicate-2col")
    attempt(scale, sh)
    sh.scale = scale

    auth = fonts.get(st.label_font, 30)
    sh.justified((right_x + 40, ay), "登记机关", 4 * 30, auth, role="authority")
    sh.text((right_x + 240, ay + 95), _date(lic.issued), fonts.get(st.value_font, 28), INK, role="authority",
            anchor="la")
    _paste_seal(img, sh, fonts, lic, seal_r, *seal_c, rng)
    _footer(sh, fonts, 100, w - 100, h - 120, 18)
    sh.area = (60, 60, w - 60, h - 60)
    return img, sh


# --- 正本-like, portrait, one column ------------------------------------------------------

def _original_portrait(lic: Licence, fonts: Fonts, rng, st: Style, flat: bool):
    w, h = 1060, 1500
    arr = guilloche(w, h, rng, [(236, 222, 205), (238, 214, 206)], (251, 248, 240), density=0.8,
                    rosette=(w / 2, h * 0.55, w * 0.42, (236, 214, 200)), flat=flat)
    img = to_image(arr)
    ornate_border(img)
    sh = Sheet(img)
    jx, jy = rng.uniform(-5, 5, 2)
    label_size = float(rng.uniform(25, 28))
    seal_dx, seal_dy = rng.uniform(-20, 20), rng.uniform(-12, 12)
    spread = float(rng.uniform(0.3, 0.8))

    sh.text((92, 96), "统一社会信用代码", fonts.get("sans-bold", 21), (20, 20, 20), anchor="la")
    sh.text((92, 128), lic.credit_code, fonts.get("sans-bold", 26, mono=True), (20, 20, 20),
            role="value", field="credit_code", spacing=1.5, anchor="la")
    _qr(img, sh, fonts, rng, w - 212, 82, 4, 11)
    _emblem(sh, w / 2, 150, 48)
    _title(sh, fonts, "serif-bold", w / 2, 222, 100, 34)

    lab = fonts.get(st.label_font, label_size)
    chars = 4 if st.label_spacing == "justified-4" else 5
    lw = chars * label_size + 8
    x = 100 + jx
    vx = x + 5 * label_size + 8 + 30
    vw = w - 96 - vx
    ay = h - 262
    seal_r = 100
    seal_c = (w - 262 + seal_dx, ay + 34 + seal_dy)
    fields = _fields(lic)
    rows = [(k, fields[k]) for k in ("name", "type", "legal_person", "registered_capital", "established", "term",
                                     "address", "scope") if k in fields]
    if st.variant % 2:  # the scope last or (as on the 2019 original) after the legal person
        rows = [(k, fields[k]) for k in ("name", "type", "legal_person", "scope", "registered_capital",
                                         "established", "term", "address") if k in fields]
    limits = {"name": 2, "type": 2, "legal_person": 1, "scope": None, "term": 1, "address": 2}

    lowest = seal_c[1] - seal_r - 8

    def attempt(scale, sheet=None, gap=20.0):
        sheet = sheet or Sheet(None, (w, h), dry=True)
        bottom = _value_rows(sheet, fonts, st, scale, rows, x, 372 + jy, lab, lw, vx, vw, limits, 27, 24, gap)
        if bottom > lowest:
            raise LayoutOverflow("column too long")
        return bottom

    scale, bottom = _best(attempt, "original-portrait")
    # the original spreads its rows down the page: share out part of the room left
    gap = 20.0 + min(26.0, spread * (lowest - bottom) / max(1, len(rows) - 1) / scale[0])
    attempt(scale, sh, gap)
    sh.scale = scale

    auth = fonts.get(st.label_font, 28)
    sh.justified((w - 420, ay), "登记机关", 4 * 28, auth, role="authority")
    sh.text((w - 330, ay + 88), _date(lic.issued), fonts.get(st.value_font, 27), INK, role="authority", anchor="la")
    _paste_seal(img, sh, fonts, lic, seal_r, *seal_c, rng)
    _footer(sh, fonts, 92, w - 92, h - 124, 15)
    sh.area = (60, 60, w - 60, h - 60)
    return img, sh


# --- the older style: 名　　称：value, one column, sans-serif ------------------------------

IDEO = "\u3000"


def _colon_label(label: str, mode: str) -> str:
    if mode == "ideographic" and len(label) == 2:
        return label[0] + IDEO * 2 + label[1]
    return label


def _colon_2014(lic: Licence, fonts: Fonts, rng, st: Style, flat: bool):
    w, h = 1500, 1060
    arr = guilloche(w, h, rng, [(214, 226, 236), (232, 220, 214)], (250, 249, 244), density=0.9,
                    rosette=(w * 0.4, h * 0.55, w * 0.3, (222, 226, 232)), flat=flat)
    img = to_image(arr)
    d = ImageDraw.Draw(img)
    red = (176, 52, 44)
    d.rectangle((30, 30, w - 30, h - 30), outline=red, width=6)
    d.rectangle((44, 44, w - 44, h - 44), outline=red, width=2)
    for cx, cy in ((44, 44), (w - 44, 44), (44, h - 44), (w - 44, h - 44)):  # corner ornaments
        d.rectangle((cx - 12, cy - 12, cx + 12, cy + 12), outline=red, width=2)
    sh = Sheet(img)
    jx, jy = rng.uniform(-6, 6, 2)
    seal_dx, seal_dy = rng.uniform(-20, 20), rng.uniform(-15, 15)
    size = float(rng.uniform(24, 27))
    copy = st.variant % 2 == 0

    _emblem(sh, w / 2, 100, 40)
    _title(sh, fonts, "sans-bold" if st.label_font != "zenhei" else "zenhei", w / 2, 146, 84, 36)
    if copy:
        sh.text((w / 2, 272), "（副　　本）", fonts.get("sans", 26), (30, 30, 30), anchor="mm")
    qx, qy, qx1, qb = _qr(img, sh, fonts, rng, w - 300, 300, 5, 13)

    lab = fonts.get(st.label_font, size)
    colon = "："
    x = 130 + jx
    right = w - 400 + jx  # the QR, 登记机关 and the seal are to the right of the field column
    fields = _fields(lic)
    order = ("name", "type", "address", "legal_person", "registered_capital", "established", "term", "scope")
    rows = [("credit_code", ("统一社会信用代码", lic.credit_code))] + [(k, fields[k]) for k in order if k in fields]
    mode = st.label_spacing
    aligned_w = max(lab.getlength(_colon_label(lbl, mode)) for k, (lbl, _) in rows[1:])
    ay = h - 250
    seal_r = 100
    seal_c = (w - 250 + seal_dx, ay + 40 + seal_dy)
    limits = {"name": 2, "type": 2, "address": 3, "scope": None, "term": 1}

    def attempt(scale, sheet=None):
        sheet = sheet or Sheet(None, (w, h), dry=True)
        y = 318 + jy
        for field, (label, value) in rows:
            text = _colon_label(label, mode)
            asc = lab.getmetrics()[0]
            base = y + asc
            if mode == "justified" and field != "credit_code" and len(text) > 1:
                sheet.justified((x, base), text, aligned_w, lab)
                end = x + aligned_w
            else:
                end = sheet.text((x, base), text, lab, INK, role="label")
            end = max(end, x + lab.getlength(text))
            end = sheet.text((end, base), colon, lab, INK, role="label")
            vx = end + 2
            font_key = "sans-bold" if field == "credit_code" and st.value_font == "sans" else st.value_font
            font, lines = _fit(fonts, font_key, size * st.value_scale * _size(scale, field) * (0.96 if field == "scope" else 1),
                               value, right - vx, limits.get(field, 1))
            pitch = font.size * st.line_pitch
            for k, line in enumerate(lines):
                sheet.text((vx, base + k * pitch), line, font, INK, role="value", field=field)
            y = base + (len(lines) - 1) * pitch + font.getmetrics()[1] + size * 0.72 * scale[0]
        if y > h - 132:
            raise LayoutOverflow("column too long")
        return sheet

    scale, _ = _best(attempt, "colon-2014")
    attempt(scale, sh)
    sh.scale = scale

    auth = fonts.get(st.label_font, 27)
    sh.text((w - 350, ay), "登记机关", auth, INK, role="authority", spacing=6, anchor="la")
    sh.text((w - 330, ay + 92), _date(lic.issued), fonts.get(st.value_font, 26), INK, role="authority",
            anchor="la")
    _paste_seal(img, sh, fonts, lic, seal_r, *seal_c, rng)
    small = fonts.get("sans", 17)
    sh.text((96, h - 92), "提示：每年1月1日至6月30日通过企业信用信息公示系统报送上一年度年度报告并公示。", small,
            (50, 50, 50), role="footer", anchor="la")
    sh.text((w - 96, h - 92), "中华人民共和国国家工商行政管理总局监制", small, (50, 50, 50), role="footer", anchor="ra")
    sh.area = (60, 60, w - 60, h - 60)
    return img, sh


# --- e-licence print-out: a ruled table ----------------------------------------------------

def _table_grid(lic: Licence, fonts: Fonts, rng, st: Style, flat: bool):
    w, h = 1060, 1500
    tone = float(rng.uniform(246, 254))
    img = Image.new("RGB", (w, h), (int(tone), int(tone), int(tone - 2)))
    sh = Sheet(img)
    jx, jy = rng.uniform(-8, 8, 2)
    seal_dx, seal_dy = rng.uniform(-20, 20), rng.uniform(-10, 10)
    # the sizes of the portrait original: labels 25-28 px, values 27 (the scope 24) on the same
    # 1060 px page, so that a photo shows both at the same scale
    size = float(rng.uniform(25, 28))  # labels (and the minimum row height)
    value_size, scope_size = 27.0, 24.0
    code_in_table = bool(rng.random() < 0.5)
    subtitle = ("", "（副本）", "（电子营业执照）")[int(rng.integers(3))]
    shade = bool(rng.random() < 0.5)

    _emblem(sh, w / 2, 96, 36)
    top = _title(sh, fonts, "serif-bold" if st.label_font == "serif-bold" else "sans-bold", w / 2, 140, 66, 26)
    if subtitle:
        sh.text((w / 2, top + 14), subtitle, fonts.get("sans", 24), (30, 30, 30), anchor="mm")
        top += 30
    _qr(img, sh, fonts, rng, w - 196, 60, 4, 11, caption=False)

    x0, x1 = 52 + jx, w - 52 + jx  # nearly the page width: the table's cells hold the larger print
    pad = 10.0
    lw = float(np.ceil(5 * size + 2 * pad + 8))  # label cells: 法定代表人 on one line
    half = (x1 - x0) / 2
    fields = _fields(lic)
    if code_in_table:
        first = [[("credit_code", ("统一社会信用代码", lic.credit_code))]]
    else:
        first = []
    # rows of one or two short fields and full-width long ones
    shorts = {0: (("type", "legal_person"), ("registered_capital", "established"), ("term",)),
              1: (("registered_capital", "legal_person"), ("established", "term"), ("type",)),
              2: (("legal_person", "registered_capital"), ("type",), ("established", "term")),
              3: (("type",), ("legal_person", "registered_capital"), ("established", "term"))}[st.variant]
    rows = first + [[("name", fields["name"])]]
    for group in shorts:
        present = [k for k in group if k in fields]
        if present:
            rows.append([(k, fields[k]) for k in present])
    # a licence without 注册资本: merge single short fields into pairs where possible
    merged = []
    for r in rows:
        if (merged and len(r) == 1 and len(merged[-1]) == 1 and r[0][0] in ("type", "legal_person", "established",
                                                                            "term", "registered_capital")
                and merged[-1][0][0] in ("type", "legal_person", "established", "term", "registered_capital")):
            merged[-1] = merged[-1] + r
        else:
            merged.append(r)
    rows = merged + [[("address", fields["address"])], [("scope", fields["scope"])]]
    seal_r = 96
    lowest = h - 300  # 登记机关 follows the table, at the latest here
    table_top = top + (28 if code_in_table else 70) + jy
    limits = {"scope": None, "address": 3, "name": 2, "type": 3, "term": 2, "credit_code": 1, "established": 1,
              "registered_capital": 2, "legal_person": 1}

    label_font = fonts.get(st.label_font, size)  # labels keep their size when the values shrink

    def cell_label(sheet, label, cx0, cx1, cy0, cy1):
        font = label_font
        lines = wrap_strict(label, font, cx1 - cx0 - 2 * pad)
        pitch = font.size * 1.3
        asc, desc = font.getmetrics()
        block = (len(lines) - 1) * pitch + asc + desc
        base = (cy0 + cy1) / 2 - block / 2 + asc
        for k, line in enumerate(lines):
            if st.label_spacing == "centred" or len(lines) > 1:
                lx = (cx0 + cx1) / 2 - font.getlength(line) / 2
                sheet.text((lx, base + k * pitch), line, font, INK, role="label", cell=(cx0, cy0, cx1, cy1))
            elif st.label_spacing == "justified" and len(line) > 1:
                sheet.justified((cx0 + pad, base + k * pitch), line, cx1 - cx0 - 2 * pad, font,
                                cell=(cx0, cy0, cx1, cy1))
            else:
                sheet.text((cx0 + pad, base + k * pitch), line, font, INK, role="label", cell=(cx0, cy0, cx1, cy1))
        return block + 2 * pad

    def attempt(scale, sheet=None):
        sheet = sheet or Sheet(None, (w, h), dry=True)
        y = table_top
        grid = []  # (row top, row bottom, [(label box, value box)])
        for row in rows:
            cells = []
            if len(row) == 1:
                spans = [(x0, x0 + lw, x1)]
            else:
                spans = [(x0, x0 + lw, x0 + half), (x0 + half, x0 + half + lw, x1)]
            heights = []
            plans = []
            for (field, (label, value)), (a, b, c) in zip(row, spans):
                vs = (scope_size if field == "scope" else value_size) * st.value_scale * _size(scale, field)
                key = st.value_font
                font, lines = _fit(fonts, key, vs, value, c - b - 2 * pad, limits.get(field, 2))
                pitch = font.size * st.line_pitch * 0.92
                asc, desc = font.getmetrics()
                heights.append((len(lines) - 1) * pitch + asc + desc + 2 * pad)
                nlab = len(wrap_strict(label, label_font, b - a - 2 * pad))
                heights.append((nlab - 1) * label_font.size * 1.3 + sum(label_font.getmetrics()) + 2 * pad)
                plans.append((field, label, value, font, lines, pitch, a, b, c))
            rh = max(max(heights), size * 2.1)
            for field, label, value, font, lines, pitch, a, b, c in plans:
                cell_label(sheet, label, a, b, y, y + rh)
                asc, desc = font.getmetrics()
                block = (len(lines) - 1) * pitch + asc + desc
                base = y + rh / 2 - block / 2 + asc if len(lines) < 3 else y + pad + asc
                for k, line in enumerate(lines):
                    sheet.text((b + pad, base + k * pitch), line, font, INK, role="value", field=field,
                               cell=(b, y, c, y + rh))
                cells.append((a, b, c))
            grid.append((y, y + rh, cells))
            y += rh
        if y > lowest - 70:
            raise LayoutOverflow("table too long")
        return sheet, grid

    scale, (_, grid) = _best(attempt, "table-grid")
    d = ImageDraw.Draw(img)
    line = (40, 40, 40)
    for top_y, bot_y, cells in grid:
        for a, b, c in cells:
            if shade:
                d.rectangle((a, top_y, b, bot_y), fill=(234, 234, 232))
            d.line((a, top_y, a, bot_y), fill=line, width=1)
            d.line((b, top_y, b, bot_y), fill=line, width=1)
        d.line((x0, bot_y, x1, bot_y), fill=line, width=1)
    d.rectangle((x0, grid[0][0], x1, grid[-1][1]), outline=(30, 30, 30), width=2)
    sh.refresh()
    attempt(scale, sh)
    sh.scale = scale
    if not code_in_table:
        e = sh.text((x0, table_top - 16), "统一社会信用代码：", label_font, INK, role="label")
        sh.text((e + 4, table_top - 16), lic.credit_code, fonts.get("sans-bold", size * 1.05), INK,
                role="value", field="credit_code")

    ay = min(lowest, grid[-1][1] + 80 + seal_dy)
    seal_c = (w - 250 + seal_dx, ay + 46 + seal_dy)
    auth = fonts.get(st.label_font, 26)
    sh.text((w - 380, ay), "登记机关", auth, INK, role="authority", spacing=5, anchor="la")
    sh.text((w - 320, ay + 86), _date(lic.issued), fonts.get(st.value_font, 25), INK, role="authority",
            anchor="la")
    _paste_seal(img, sh, fonts, lic, seal_r, *seal_c, rng)
    _footer(sh, fonts, 72, w - 72, h - 120, 15)
    sh.area = (40, 40, w - 40, h - 40)
    return img, sh


def layout_problems(sheet: Sheet, tol: float = 1.0) -> list[str]:
    """What is wrong with a drawn page: field text (labels and values) that overlaps other
    text or a picture (emblem, QR, seal), leaves the page's printable area or its table cell."""
    out = []
    area = getattr(sheet, "area", (0, 0) + tuple(sheet.size))

    def hit(a, b) -> bool:
        return a[0] < b[2] - tol and b[0] < a[2] - tol and a[1] < b[3] - tol and b[1] < a[3] - tol

    def inside(a, b) -> bool:
        return a[0] >= b[0] - tol and a[1] >= b[1] - tol and a[2] <= b[2] + tol and a[3] <= b[3] + tol

    field_roles = ("label", "value")
    marks = sheet.marks
    for i, m in enumerate(marks):
        if m.role not in field_roles:
            continue
        if not inside(m.box, area):
            out.append(f"{m} leaves the page area {area}")
        if m.cell is not None and not inside(m.box, m.cell):
            out.append(f"{m} leaves its cell {tuple(round(v) for v in m.cell)}")
        for name, box in sheet.obstacles.items():
            if hit(m.box, box):
                out.append(f"{m} overlaps the {name}")
        for j, n in enumerate(marks):
            if j == i or (j < i and n.role in field_roles):  # each pair of field texts once
                continue
            if hit(m.box, n.box):
                out.append(f"{m} overlaps {n}")
    return out
