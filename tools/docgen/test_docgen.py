"""Tests for the document generator: check rules, ground truth contract, determinism, images.

    python3 -m unittest discover -s tools/docgen -v
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import checks  # noqa: E402
import content  # noqa: E402
import data  # noqa: E402
import degrade  # noqa: E402
import docgen  # noqa: E402
import layouts  # noqa: E402
import render  # noqa: E402

TODAY = dt.date(2025, 6, 1)

try:
    render.Fonts().require(layouts.LICENCE_FONTS)
    FONT_PROBLEM = None
except render.FontMissing as e:  # pragma: no cover - depends on the machine
    FONT_PROBLEM = str(e)


class CheckRules(unittest.TestCase):
    def test_id_numbers(self):
        cases = [
            ("321083197812162119", True),
            ("150102198807303035", True),
            ("33010219200403064X", True),
            ("33010219200403064x", True),   # lower-case x is the same check char
            ("321083197812162118", False),  # wrong check digit
            ("321083197802302110", False),  # 30 February
            ("32108319781216211", False),   # too short
            ("32108319781216211A", False),
            ("", False),
        ]
        for number, want in cases:
            with self.subTest(number=number):
                self.assertEqual(checks.id_valid(number), want)

    def test_credit_codes(self):
        cases = [
            ("91310110666007217T", True),
            ("91310115591693856A", True),
            ("91110108700338416R", True),
            ("91350203M0001QAY9B", False),  # the spec's invalid sample
            ("91310110666007217A", False),
            ("9131011066600721OT", False),  # O is not in the charset
            ("91310110666007217", False),
        ]
        for code, want in cases:
            with self.subTest(code=code):
                self.assertEqual(checks.credit_valid(code), want)

    def test_check_char_bodies(self):
        self.assertEqual(checks.id_check_char("32108319781216211"), "9")
        self.assertEqual(checks.credit_check_char("91310110666007217"), "T")
        self.assertEqual(checks.org_check_char("66600721"), "7")
        with self.assertRaises(ValueError):
            checks.id_check_char("1234")

    def test_generated_numbers_always_pass(self):
        rng = np.random.default_rng(12345)
        for _ in range(2000):
            p = content.person(rng, TODAY)
            self.assertTrue(checks.id_valid(p.id_number), p.id_number)
            self.assertEqual(checks.id_birth_date(p.id_number), p.birth)
            self.assertEqual(int(p.id_number[16]) % 2 == 1, p.male, p.id_number)
            self.assertLessEqual(p.valid_from, TODAY)
            if p.valid_to is not None:
                self.assertGreater(p.valid_to, TODAY)
        for _ in range(2000):
            lic = content.licence(rng, TODAY)
            self.assertTrue(checks.credit_valid(lic.credit_code), lic.credit_code)

    def test_capital_numerals(self):
        cases = [(10, "壹拾万元整"), (100, "壹佰万元整"), (1050, "壹仟零伍拾万元整"), (10000, "壹亿元整")]
        for wan, want in cases:
            self.assertEqual(content.capital_upper(wan), want)

    def test_capital_printed_forms(self):
        # financial numerals and the Arabic-digit forms licences carry; the truth is the text as printed
        forms = {
            "upper": re.compile(r"^(人民币)?[零壹贰叁肆伍陆柒捌玖拾佰仟万亿]+元整$"),
            "万元人民币": re.compile(r"^[1-9]\d*万元人民币$"),
            "人民币万元": re.compile(r"^人民币[1-9]\d*万元$"),
            "decimal": re.compile(r"^[1-9]\d*\.000000万人民币$"),
            "万元": re.compile(r"^[1-9]\d*万元$"),
        }
        seen = dict.fromkeys(forms, 0)
        rng = np.random.default_rng(4)
        for _ in range(600):
            lic = content.licence(rng, TODAY)
            if lic.capital is None:
                self.assertIn(lic.type, ("个体工商户", "个人独资企业"))
                self.assertNotIn("registered_capital", lic.truth())
                continue
            self.assertEqual(lic.truth()["registered_capital"], lic.capital)
            hits = [k for k, rx in forms.items() if rx.match(lic.capital)]
            self.assertEqual(len(hits), 1, lic.capital)
            seen[hits[0]] += 1
        self.assertTrue(all(seen.values()), seen)
        self.assertGreater(seen["upper"], sum(seen.values()) / 3)


ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def long_licence(label_font="kai", value_font="zenhei") -> content.Licence:
    """A licence longer in every field than the generator makes: every layout must still print
    all of it (the old renderer cut the scope at 11 lines, the name at 2, the address at 3)."""
    scope = ("一般项目：" + "；".join(data.INDUSTRIES["科技"] + data.INDUSTRIES["物流"]) + "。" + data.SCOPE_TAIL
             + "许可项目：道路货物运输（不含危险货物）。" + data.SCOPE_TAIL_PERMIT)
    return content.Licence(
        name="恒达信诚（乌鲁木齐）农业发展股份有限公司乌鲁木齐天山区第一分公司", credit_code="91650102MA7X8Y9L1K",
        type="有限责任公司（非自然人投资或控股的法人独资）", legal_person="欧阳子豪", legal_label="法定代表人",
        capital="人民币壹万零伍仟伍佰伍拾伍万元整", established=dt.date(2001, 12, 31), term_to=dt.date(2051, 12, 30),
        term_style="range", address_label="住所",
        address="新疆维吾尔自治区乌鲁木齐市天山区天目山东路998号东方公寓39幢5单元3204室（自主申报）",
        scope=scope, authority="乌鲁木齐市天山区市场监督管理局", issued=dt.date(2024, 12, 31))


class GroundTruth(unittest.TestCase):
    def test_keys_and_formats(self):
        rng = np.random.default_rng(7)
        for _ in range(300):
            p = content.person(rng, TODAY)
            front = p.front_truth()
            self.assertEqual(tuple(front), docgen.ID_FRONT_KEYS)
            self.assertIn(front["gender"], ("男", "女"))
            self.assertRegex(front["birth_date"], ISO)
            self.assertNotIn("族", front["nation"])
            back = p.back_truth()
            self.assertEqual(tuple(back), docgen.ID_BACK_KEYS)
            self.assertRegex(back["valid_from"], ISO)
            self.assertTrue(back["valid_to"] == "长期" or ISO.match(back["valid_to"]))
            lic = content.licence(rng, TODAY).truth()
            self.assertTrue(set(lic) <= set(docgen.LICENCE_KEYS), lic.keys())
            self.assertEqual(set(docgen.LICENCE_KEYS) - set(lic) - {"registered_capital"}, set())
            self.assertRegex(lic["established"], ISO)
            self.assertRegex(lic["term"], r"^(长期|\d{4}-\d{2}-\d{2}至(长期|\d{4}-\d{2}-\d{2}))$")
            for v in lic.values():
                self.assertIsInstance(v, str)
                self.assertTrue(v)

    def test_id_front_keys_match_contract(self):
        # the OCR JSON contract: name, gender, nation, birth_date, address, id_number
        self.assertEqual(set(docgen.ID_FRONT_KEYS), {"name", "gender", "nation", "birth_date", "address", "id_number"})
        self.assertEqual(set(docgen.LICENCE_KEYS), {"name", "credit_code", "type", "legal_person",
                                                    "registered_capital", "established", "term", "address",
                                                    "scope"})


class Wrapping(unittest.TestCase):
    @unittest.skipIf(FONT_PROBLEM, FONT_PROBLEM or "")
    def test_wrap_keeps_every_character_inside_the_width(self):
        fonts = render.Fonts()
        rng = np.random.default_rng(8)
        for n in range(150):
            lic = content.licence(rng, TODAY)
            font = fonts.get(("serif", "kai", "ming", "zenhei", "sans")[n % 5], 20 + n % 9)
            for text in (lic.scope, lic.address, lic.name, lic.type, lic.term_printed, lic.capital or ""):
                width = float(rng.uniform(120, 700))
                lines = render.wrap_strict(text, font, width)
                self.assertEqual("".join(lines), text)
                for k, line in enumerate(lines):
                    self.assertTrue(line)
                    if len(line) > 1:
                        self.assertLessEqual(font.getlength(line), width, (line, width))
                        self.assertNotIn(line[-1], render.NO_LINE_END, lines)
                    if k:
                        self.assertNotIn(line[0], render.NO_LINE_START, lines)

    @unittest.skipIf(FONT_PROBLEM, FONT_PROBLEM or "")
    def test_id_card_prints_the_whole_address(self):
        # the card has room for three lines: a long address is set smaller, never cut
        fonts = render.Fonts()
        rng = np.random.default_rng(21)
        smaller = 0
        for _ in range(1500):
            p = content.person(rng, TODAY)
            font, lines = render.id_address_lines(p.address, fonts, 12.0)
            self.assertLessEqual(len(lines), 3, lines)
            self.assertEqual("".join(lines), p.address)
            smaller += font.size < 40
        self.assertLess(smaller, 60)


@unittest.skipIf(FONT_PROBLEM, FONT_PROBLEM or "")
class LicenceLayouts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fonts = render.Fonts()

    def _render(self, lic, style, seed=0, flat=True):
        return layouts.render_licence(lic, self.fonts, np.random.default_rng(seed), style, flat=flat)

    def test_each_layout_renders(self):
        for layout in layouts.LAYOUTS:
            for seed in range(3):
                with self.subTest(layout=layout, seed=seed):
                    lic = content.licence(np.random.default_rng([seed, 3]), TODAY)
                    style = layouts.choose_style(np.random.default_rng([seed, 7]), (layout,))
                    self.assertEqual(style.layout, layout)
                    img, sheet = self._render(lic, style, seed, flat=seed > 0)
                    self.assertEqual(img.mode, "RGBA")
                    portrait = layout in ("original-portrait", "table-grid")
                    self.assertEqual(img.height > img.width, portrait, img.size)
                    self.assertGreater(min(img.size), 1000)
                    self.assertEqual(sheet.drawn, lic.printed())
                    self.assertEqual(layouts.layout_problems(sheet), [])
                    g = np.asarray(img.convert("L"), np.float32)
                    self.assertGreater(g.std(), 15)

    def test_printed_text_is_the_truth(self):
        # what each layout prints is exactly the truth, for many items: nothing cut, nothing
        # overlapping, nothing outside the page or its table cell
        for i in range(20):
            lic = content.licence(np.random.default_rng([99, i, 3]), TODAY)
            for layout in layouts.LAYOUTS:
                style = layouts.choose_style(np.random.default_rng([99, i, 3, 3]), (layout,))
                with self.subTest(i=i, layout=layout, style=style):
                    _, sheet = self._render(lic, style, i)
                    self.assertEqual(sheet.drawn, lic.printed())
                    self.assertEqual(layouts.layout_problems(sheet), [])

    def test_long_values_are_set_smaller_not_cut(self):
        lic = long_licence()
        for layout in layouts.LAYOUTS:
            for variant in range(4):
                spacing = {"duplicate-2col": "justified", "original-portrait": "justified-4",
                           "colon-2014": "ideographic", "table-grid": "justified"}[layout]
                style = layouts.Style(layout, "kai", "zenhei", 1.1, 1.62, spacing, variant)
                with self.subTest(layout=layout, variant=variant):
                    _, sheet = self._render(lic, style, variant)
                    self.assertEqual(sheet.drawn, lic.printed())
                    self.assertEqual(layouts.layout_problems(sheet), [])
        # and a layout that cut would be caught
        with self.assertRaises(docgen.TruthMismatch):
            docgen.check_printed(lic, dict(lic.printed(), scope=lic.scope[:200]))

    def test_problems_are_found(self):
        lic = content.licence(np.random.default_rng(5), TODAY)
        _, sheet = self._render(lic, layouts.choose_style(np.random.default_rng(5), ("duplicate-2col",)))
        value = next(m for m in sheet.marks if m.field == "name")
        sheet.obstacle("seal", value.box)
        self.assertTrue(any("overlaps the seal" in p for p in layouts.layout_problems(sheet)))

    def test_same_seed_same_page(self):
        for layout in layouts.LAYOUTS:
            lic = content.licence(np.random.default_rng(31), TODAY)
            style = layouts.choose_style(np.random.default_rng(32), (layout,))
            a, _ = self._render(lic, style, 33)
            b, _ = self._render(lic, style, 33)
            self.assertEqual(a.tobytes(), b.tobytes(), layout)

    def test_layouts_and_fonts_vary_per_item(self):
        styles = [layouts.choose_style(np.random.default_rng([1, i, docgen.KIND_CODE["licence"], 3]))
                  for i in range(40)]
        self.assertEqual({s.layout for s in styles}, set(layouts.LAYOUTS))
        many = [layouts.choose_style(np.random.default_rng([2, i])) for i in range(300)]
        self.assertEqual({s.label_font for s in many} | {s.value_font for s in many}, set(layouts.LICENCE_FONTS))
        self.assertTrue({"kai", "ming", "zenhei"} <= {s.value_font for s in many})
        for s in many:
            self.assertTrue(0.9 <= s.value_scale <= 1.1)
            if s.layout == "colon-2014":  # the old style was set in sans-serif faces
                self.assertIn(s.value_font, ("sans", "zenhei"))

    def test_fonts_have_every_character(self):
        text = set("0123456789ABCDEFGHJKLMNPQRTUWXY年月日至长期：，。；、（）统一社会信用代码营业执照副本登记机关")
        rng = np.random.default_rng(6)
        for _ in range(400):
            for v in content.licence(rng, TODAY).printed().values():
                text |= set(v)
        text |= set("名称类型法定代表人经营者投资人范围注册资本成立日期营业期限住所经营场所")
        for key in layouts.LICENCE_FONTS:
            self.assertEqual(self.fonts.missing(key, "".join(sorted(text))), "", key)
        self.assertEqual(self.fonts.missing("kai", "\U0002A6A5"), "\U0002A6A5")  # a rare CJK Ext. B char


@unittest.skipIf(FONT_PROBLEM, FONT_PROBLEM or "")
class Generation(unittest.TestCase):
    def _run(self, out, kind, count=2, seed=3, clean=False):
        docgen.generate(kind, count, seed, out, clean=clean)
        with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
            return json.load(f)["kinds"][kind]

    def _manifest(self, out, kind):
        with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
            return json.load(f)["kinds"][kind]

    def test_cli(self):
        with tempfile.TemporaryDirectory() as out:
            self.assertEqual(docgen.main(["--kind", "id-back", "--count", "1", "--seed", "9", "--out", out,
                                          "--strength", "0.5", "--set", "jpeg_min=90"]), 0)
            self.assertEqual(self._manifest(out, "id-back")["params"]["jpeg_min"], 90)

    def test_same_seed_same_json(self):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            for kind in docgen.KINDS:
                self._run(a, kind)
                self._run(b, kind)
                images = {m["image"] for m in self._manifest(a, kind)["items"]}
                for i in range(2):
                    for name in [f"{kind}-{i}.json"] + sorted(x for x in images if x.startswith(f"{kind}-{i}.")):
                        with open(os.path.join(a, name), "rb") as fa, open(os.path.join(b, name), "rb") as fb:
                            self.assertEqual(fa.read(), fb.read(), name)
            with open(os.path.join(a, "manifest.json"), "rb") as fa, open(os.path.join(b, "manifest.json"), "rb") as fb:
                self.assertEqual(fa.read(), fb.read())

    def test_other_seed_other_content(self):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            self._run(a, "id-front", count=1, seed=1)
            self._run(b, "id-front", count=1, seed=2)
            with open(os.path.join(a, "id-front-0.json"), "rb") as fa, open(os.path.join(b, "id-front-0.json"), "rb") as fb:
                self.assertNotEqual(fa.read(), fb.read())

    def test_images_and_truth(self):
        with tempfile.TemporaryDirectory() as out:
            for kind in docgen.KINDS:
                for clean in (False, True):
                    m = self._run(out, kind, count=2, clean=clean)
                    self.assertEqual(m["field_keys"], list(docgen.CONTRACT_KEYS[kind]))
                    self.assertEqual(len(m["items"]), 2)
                    for item in m["items"]:
                        with Image.open(os.path.join(out, item["image"])) as im:
                            im.load()
                            self.assertEqual(im.mode, "RGB")
                            self.assertEqual(im.size, (item["width"], item["height"]))
                            lo, hi = (600, 2600) if kind == "licence" else (500, 2000)
                            self.assertTrue(lo <= max(im.size) <= hi, (kind, clean, im.size))
                            self.assertGreater(min(im.size), 300)
                            # not a blank frame: there is ink on the page
                            g = np.asarray(im.convert("L"), np.float32)
                            self.assertGreater(g.std(), 15)
                        if clean:
                            self.assertTrue(item["image"].endswith(".png"))
                        with open(os.path.join(out, item["truth"]), encoding="utf-8") as f:
                            truth = json.load(f)
                        self.assertTrue(set(truth) <= set(docgen.CONTRACT_KEYS[kind]))
                        if kind == "id-front":
                            self.assertTrue(checks.id_valid(truth["id_number"]))
                            self.assertEqual(truth["birth_date"].replace("-", ""), truth["id_number"][6:14])
                        if kind == "licence":
                            self.assertTrue(checks.credit_valid(truth["credit_code"]))
                            printed = item["printed"]
                            self.assertIn(printed["layout"], layouts.LAYOUTS)
                            self.assertIn(printed["label_font"], layouts.LICENCE_FONTS)
                            self.assertIn(printed["value_font"], layouts.LICENCE_FONTS)
                        # enough to bucket by blur, tilt and glare
                        deg = item["degradation"]
                        for key in ("rotation_deg", "perspective", "blur_px", "glare_level"):
                            self.assertIsInstance(deg[key], (int, float), (key, deg))
                        if not clean:
                            self.assertLessEqual(abs(deg["rotation_deg"]), 5)
                            self.assertEqual(deg.get("glare", False), deg["glare_level"] > 0)
                        for x, y in item["quad"]:
                            self.assertTrue(-1 <= x <= item["width"] + 1 and -1 <= y <= item["height"] + 1)

    def test_manifest_version_and_layout_option(self):
        self.assertEqual(docgen.GENERATOR_VERSION, 2)
        with tempfile.TemporaryDirectory() as out:
            self.assertEqual(docgen.main(["--kind", "licence", "--count", "2", "--seed", "4", "--out", out,
                                          "--clean", "--layout", "table-grid,colon-2014"]), 0)
            with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
                whole = json.load(f)
            self.assertEqual(whole["version"], docgen.GENERATOR_VERSION)
            m = whole["kinds"]["licence"]
            self.assertEqual(m["version"], docgen.GENERATOR_VERSION)
            self.assertEqual(m["layouts"], ["table-grid", "colon-2014"])
            for item in m["items"]:
                self.assertIn(item["printed"]["layout"], ("table-grid", "colon-2014"))
            with self.assertRaises(SystemExit):
                docgen.main(["--kind", "licence", "--count", "1", "--out", out, "--layout", "tabular"])

    def test_extending_a_set_keeps_the_manifest_entries(self):
        with tempfile.TemporaryDirectory() as out:
            docgen.generate("id-back", 1, 5, out)
            docgen.generate("id-back", 1, 5, out, start=1)
            m = self._manifest(out, "id-back")
            self.assertEqual([it["index"] for it in m["items"]], [0, 1])
            self.assertEqual(m["count"], 2)
            docgen.generate("id-back", 1, 6, out, start=1)  # another seed: a new set
            self.assertEqual([it["index"] for it in self._manifest(out, "id-back")["items"]], [1])

    def test_front_and_back_are_one_person(self):
        rng_a = np.random.default_rng([5, 0])
        rng_b = np.random.default_rng([5, 0])
        self.assertEqual(content.person(rng_a, TODAY), content.person(rng_b, TODAY))

    def test_degradation_knobs(self):
        d = degrade.Degrade.parse(0.5, ["blur=0", "jpeg_min=80"])
        self.assertEqual(d.blur, 0)
        self.assertEqual(d.rotation, 0.5)
        self.assertEqual(d.jpeg_min, 80)
        with self.assertRaises(ValueError):
            degrade.Degrade.parse(1, ["nonsense=1"])
        # all effects off: a flat encode of the document, still a valid image
        p = degrade.Degrade.parse(0, ["png_share=0"])
        doc = Image.new("RGBA", (400, 250), (250, 250, 250, 255))
        img, quad, _ = degrade.photograph(doc, np.random.default_rng(1), p, out_width=400)
        ext, data, _ = degrade.encode(img, np.random.default_rng(1), p, clean=False)
        self.assertEqual(ext, "jpg")
        self.assertEqual(Image.open(io.BytesIO(data)).size, img.size)

    def test_missing_font_message(self):
        old = os.environ.get("DOCGEN_FONT_DIR")
        with tempfile.TemporaryDirectory() as empty:
            os.environ["DOCGEN_FONT_DIR"] = empty
            try:
                with self.assertRaises(render.FontMissing) as cm:
                    render.Fonts()
                self.assertIn("fonts-noto-cjk", str(cm.exception))
                # with only the Noto fonts, a licence asks for the other packages by name
                for name in ("NotoSansCJK-Regular.ttc", "NotoSansCJK-Bold.ttc", "NotoSerifCJK-Regular.ttc",
                             "NotoSerifCJK-Bold.ttc"):
                    os.symlink(_font_path(name), os.path.join(empty, name))
                fonts = render.Fonts()
                with self.assertRaises(render.FontMissing) as cm:
                    fonts.require(layouts.LICENCE_FONTS)
                self.assertRegex(str(cm.exception), "apt-get install fonts-(arphic-ukai|arphic-uming|wqy-zenhei)")
                with self.assertRaises(render.FontMissing):
                    docgen.generate("licence", 1, 1, os.path.join(empty, "out"))
            finally:
                if old is None:
                    del os.environ["DOCGEN_FONT_DIR"]
                else:
                    os.environ["DOCGEN_FONT_DIR"] = old


def _font_path(name: str) -> str:
    for root in render.FONT_ROOTS:
        for dirpath, _, files in os.walk(root):
            if name in files:
                return os.path.join(dirpath, name)
    raise FileNotFoundError(name)


if __name__ == "__main__":
    unittest.main()
