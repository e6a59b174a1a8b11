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
import degrade  # noqa: E402
import docgen  # noqa: E402
import render  # noqa: E402

TODAY = dt.date(2025, 6, 1)

try:
    render.Fonts()
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


ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")


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


class IdCardPrint(unittest.TestCase):
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
                        for x, y in item["quad"]:
                            self.assertTrue(-1 <= x <= item["width"] + 1 and -1 <= y <= item["height"] + 1)

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
            finally:
                if old is None:
                    del os.environ["DOCGEN_FONT_DIR"]
                else:
                    os.environ["DOCGEN_FONT_DIR"] = old


if __name__ == "__main__":
    unittest.main()
