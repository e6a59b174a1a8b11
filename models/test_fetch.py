#!/usr/bin/env python3
"""Tests for models/fetch.py. Standard library only; no network.

Run: python3 -m unittest discover -s models -p 'test_*.py'   (or python3 models/test_fetch.py)
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import unittest
import zipfile
from pathlib import Path
from unittest import mock

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fetch  # noqa: E402


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(path: Path, package: str, version: str, members: dict[str, bytes]) -> bytes:
    """Write a minimal valid pure-Python wheel and return its bytes."""
    dist = f"{package}-{version}.dist-info"
    files = dict(members)
    files[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n".encode()
    files[f"{dist}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = "".join(f"{name},,\n" for name in files) + f"{dist}/RECORD,,\n"
    files[f"{dist}/RECORD"] = record.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return path.read_bytes()


def toml_entry(name: str, role: str, file: str, data: bytes, source: str, arch: str | None = None) -> str:
    lines = [
        "[[models]]",
        f'name = "{name}"',
        f'role = "{role}"',
        f'file = "{file}"',
        f'sha256 = "{sha(data)}"',
        f"bytes = {len(data)}",
        'licence = "MIT"',
        'version = "1"',
    ]
    if arch:
        lines.append(f'arch = "{arch}"')
    lines.append(source)
    if role == "onnxruntime":
        lines += ["[models.runtime]", "api_version = 27"]
    else:
        lines += ["[models.input]", 'tensor = "x"', "shape = [1, 3, 8, 8]", 'colour = "BGR"']
    return "\n".join(lines) + "\n"


class Fixture:
    """A temp mirror, dest and manifest built from bytes made here."""

    ALPHA = b"alpha model bytes\n" * 100
    BETA = b"\x7fELF pretend shared library" * 50
    GAMMA = b"gamma model inside a wheel" * 70

    def __init__(self, root: Path):
        self.root = root
        self.mirror = root / "mirror"
        self.dest = root / "dest"
        self.index = root / "index"  # a local package index for the pip path
        for d in (self.mirror, self.index):
            d.mkdir()
        (self.mirror / "alpha.onnx").write_bytes(self.ALPHA)
        (self.mirror / "x86_64").mkdir()
        (self.mirror / "x86_64" / "libbeta.so.1").write_bytes(self.BETA)
        self.wheel_name = "gammapkg-1.0-py3-none-any.whl"
        self.wheel = make_wheel(self.mirror / self.wheel_name, "gammapkg", "1.0",
                                {"gammapkg/models/gamma.onnx": self.GAMMA})
        (self.index / self.wheel_name).write_bytes(self.wheel)
        self.manifest = root / "manifest.toml"
        self.write_manifest()

    def write_manifest(self, wheel_sha: str | None = None) -> None:
        wheel_src = "\n".join([
            "[models.source]",
            'type = "wheel"',
            'package = "gammapkg"',
            'package_version = "1.0"',
            f'wheel = "{self.wheel_name}"',
            f'wheel_sha256 = "{wheel_sha or sha(self.wheel)}"',
            f"wheel_bytes = {len(self.wheel)}",
            'python_version = "3.11"',
            'member = "gammapkg/models/gamma.onnx"',
        ])
        mirror_src = '[models.source]\ntype = "mirror"\nurls = ["https://example.invalid/alpha.onnx"]'
        text = "schema_version = 1\n\n" + "\n".join([
            toml_entry("alpha", "face_detector", "alpha.onnx", self.ALPHA, mirror_src),
            toml_entry("beta_x86_64", "onnxruntime", "x86_64/libbeta.so.1", self.BETA,
                       '[models.source]\ntype = "mirror"', arch="x86_64"),
            toml_entry("gamma", "ocr_det", "gamma.onnx", self.GAMMA, wheel_src),
        ])
        self.manifest.write_text(text)

    def run(self, *args: str, mirror: bool = True) -> tuple[int, dict[str, fetch.Result], str, str]:
        argv = ["--manifest", str(self.manifest), "--dest", str(self.dest), "--arch", "x86_64", *args]
        if mirror:
            argv += ["--mirror", str(self.mirror)]
        out, err = io.StringIO(), io.StringIO()
        code, results = fetch.run(argv, out=out, err=err)
        return code, {r.entry["name"]: r for r in results}, out.getvalue(), err.getvalue()

    def leftovers(self) -> list[Path]:
        return [p for p in self.dest.rglob("*") if p.name.endswith(".part")] if self.dest.exists() else []


class RealManifestTest(unittest.TestCase):
    def setUp(self):
        self.entries = fetch.load_manifest(fetch.DEFAULT_MANIFEST)
        self.by_name = {e["name"]: e for e in self.entries}

    def test_every_entry_has_all_fields(self):
        for e in self.entries:
            with self.subTest(e["name"]):
                for key in fetch.REQUIRED_FIELDS:
                    self.assertIn(key, e)
                self.assertRegex(e["sha256"], r"^[0-9a-f]{64}$")
                self.assertGreater(e["bytes"], 0)
                src = e["source"]
                self.assertIn(src["type"], ("wheel", "mirror"))
                if src["type"] == "wheel":
                    for key in (*fetch.WHEEL_FIELDS, "wheel_bytes"):
                        self.assertIn(key, src)
                    self.assertRegex(src["wheel_sha256"], r"^[0-9a-f]{64}$")
                    self.assertTrue(src["wheel"].endswith(".whl"))
                else:
                    self.assertTrue(src.get("urls"), "mirror-only entries say where the bytes come from")
                if e["role"] == "onnxruntime":
                    self.assertIn(e["arch"], fetch.ARCHES)
                    self.assertTrue(e["file"].startswith(e["arch"] + "/"))
                    self.assertGreaterEqual(e["runtime"]["api_version"], 22)
                else:
                    for key in ("tensor", "shape", "colour", "dtype"):
                        self.assertIn(key, e["input"])

    def test_expected_models_present(self):
        roles = sorted(e["role"] for e in self.entries)
        self.assertEqual(roles, sorted(["ocr_det", "ocr_rec", "ocr_cls", "face_detector",
                                        "face_embedder", "onnxruntime", "onnxruntime"]))
        runtimes = [e for e in self.entries if e["role"] == "onnxruntime"]
        self.assertEqual(sorted(e["arch"] for e in runtimes), ["aarch64", "x86_64"])
        self.assertEqual(len({e["version"] for e in runtimes}), 1, "one ONNX Runtime version for both arches")

    def test_model_specific_facts(self):
        emb = self.by_name["face_embedder"]["input"]
        self.assertEqual(emb["output_dim"], 256)
        self.assertEqual(emb["input_size"], 128)
        self.assertEqual(len(emb["alignment_template"]), 5)
        self.assertTrue(all(len(p) == 2 and 0 < p[0] < 1 and 0 < p[1] < 1 for p in emb["alignment_template"]))
        det = self.by_name["face_detector"]["input"]
        self.assertEqual(det["strides"], [8, 16, 32])
        self.assertEqual(det["shape"], [1, 3, 640, 640])
        self.assertIn("score_threshold", det)
        self.assertIn("nms_iou_threshold", det)
        ocr_det = self.by_name["ocr_det"]["input"]
        self.assertEqual((ocr_det["limit_side_len"], ocr_det["limit_type_max_side_len"]), (736, 960))
        self.assertEqual((ocr_det["mean"], ocr_det["std"]), ([0.5] * 3, [0.5] * 3))
        rec = self.by_name["ocr_rec"]["input"]
        self.assertEqual(rec["height"], 48)
        self.assertEqual(rec["dictionary"], "onnx_metadata:character")
        self.assertEqual(rec["classes"], rec["dictionary_lines"] + 2)
        cls = self.by_name["ocr_cls"]["input"]
        self.assertEqual((cls["height"], cls["width"], cls["labels"]), (48, 192, ["0", "180"]))


class FetchTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.fx = Fixture(Path(self._tmp.name))
        env = {k: v for k, v in os.environ.items() if k != "BRANCHD_MODELS_MIRROR"}
        self._env = mock.patch.dict(os.environ, env, clear=True)
        self._env.start()

    def tearDown(self):
        self._env.stop()
        self._tmp.cleanup()

    def assert_installed(self, rel: str, data: bytes):
        self.assertEqual((self.fx.dest / rel).read_bytes(), data)

    def test_fetch_from_mirror_then_idempotent(self):
        code, res, out, err = self.fx.run()
        self.assertEqual(code, 0, err)
        self.assertEqual({n: r.status for n, r in res.items()},
                         {"alpha": "fetched", "beta_x86_64": "fetched", "gamma": "fetched"})
        self.assertEqual(res["gamma"].origin, "mirror (wheel)")
        self.assert_installed("alpha.onnx", Fixture.ALPHA)
        self.assert_installed("x86_64/libbeta.so.1", Fixture.BETA)
        self.assert_installed("gamma.onnx", Fixture.GAMMA)
        mtimes = {p: p.stat().st_mtime_ns for p in self.fx.dest.rglob("*") if p.is_file()}

        code, res, out, err = self.fx.run()
        self.assertEqual(code, 0, err)
        self.assertEqual({r.status for r in res.values()}, {"ok"})
        self.assertIn("0 fetched", out)
        self.assertEqual(mtimes, {p: p.stat().st_mtime_ns for p in self.fx.dest.rglob("*") if p.is_file()})
        self.assertEqual(self.fx.leftovers(), [])

    def test_corrupted_file_in_dest_is_replaced_from_mirror(self):
        self.assertEqual(self.fx.run()[0], 0)
        target = self.fx.dest / "alpha.onnx"
        target.write_bytes(b"corrupted")
        code, res, out, err = self.fx.run()
        self.assertEqual(code, 0, err)
        self.assertEqual(res["alpha"].status, "replaced")
        self.assertEqual(res["gamma"].status, "ok")
        self.assert_installed("alpha.onnx", Fixture.ALPHA)
        # a flipped byte with the right size is caught as well
        data = bytearray(Fixture.BETA)
        data[10] ^= 0xFF
        (self.fx.dest / "x86_64" / "libbeta.so.1").write_bytes(bytes(data))
        code, res, _, err = self.fx.run()
        self.assertEqual((code, res["beta_x86_64"].status), (0, "replaced"), err)
        self.assert_installed("x86_64/libbeta.so.1", Fixture.BETA)

    def test_mirror_file_with_wrong_hash_is_refused(self):
        bad = b"tampered alpha"
        (self.fx.mirror / "alpha.onnx").write_bytes(bad)
        code, res, out, err = self.fx.run()
        self.assertEqual(code, 1)
        self.assertEqual(res["alpha"].status, "failed")
        self.assertEqual(res["gamma"].status, "fetched", "other entries still proceed")
        self.assertIn("alpha.onnx", err)
        self.assertIn(sha(Fixture.ALPHA), err)
        self.assertIn(sha(bad), err)
        self.assertFalse((self.fx.dest / "alpha.onnx").exists())
        self.assertEqual(self.fx.leftovers(), [])

    def test_bad_file_is_not_kept_when_replacement_fails(self):
        self.assertEqual(self.fx.run()[0], 0)
        (self.fx.dest / "alpha.onnx").write_bytes(b"corrupted")
        (self.fx.mirror / "alpha.onnx").write_bytes(b"tampered")
        code, res, _, err = self.fx.run()
        self.assertEqual((code, res["alpha"].status), (1, "failed"))
        self.assertFalse((self.fx.dest / "alpha.onnx").exists())

    def test_wheel_with_wrong_hash_is_refused(self):
        self.fx.write_manifest(wheel_sha="0" * 64)
        code, res, _, err = self.fx.run("--only", "gamma")
        self.assertEqual(code, 1)
        self.assertEqual(res["gamma"].status, "failed")
        self.assertIn(self.fx.wheel_name, err)
        self.assertIn("0" * 64, err)
        self.assertFalse((self.fx.dest / "gamma.onnx").exists())

    def test_mirror_only_model_without_mirror_says_where_to_get_it(self):
        code, res, _, err = self.fx.run("--only", "alpha", mirror=False)
        self.assertEqual(code, 1)
        self.assertEqual(res["alpha"].status, "failed")
        self.assertIn("no --mirror given", err)
        self.assertIn("https://example.invalid/alpha.onnx", err)

    def test_wheel_from_package_index_with_pip(self):
        if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
            self.skipTest("pip is not available")
        # pip reads these from the environment: a local index only, never the network.
        os.environ.update({"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(self.fx.index),
                           "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
        (self.fx.mirror / self.fx.wheel_name).unlink()  # mirror has neither the file nor the wheel
        code, res, _, err = self.fx.run("--only", "gamma")
        self.assertEqual(code, 0, err)
        self.assertEqual((res["gamma"].status, res["gamma"].origin), ("fetched", "PyPI"))
        self.assert_installed("gamma.onnx", Fixture.GAMMA)

    def test_verify_only_changes_nothing(self):
        code, res, _, _ = self.fx.run("--verify-only")
        self.assertEqual(code, 1)
        self.assertEqual({r.status for r in res.values()}, {"missing"})
        self.assertFalse(self.fx.dest.exists() and any(self.fx.dest.iterdir()))
        self.assertEqual(self.fx.run()[0], 0)
        self.assertEqual(self.fx.run("--verify-only")[0], 0)
        (self.fx.dest / "gamma.onnx").write_bytes(b"corrupted")
        code, res, _, err = self.fx.run("--verify-only")
        self.assertEqual((code, res["gamma"].status), (1, "bad"))
        self.assertIn(sha(b"corrupted"), err)
        self.assertEqual((self.fx.dest / "gamma.onnx").read_bytes(), b"corrupted")

    def test_arch_and_only_selection(self):
        code, res, _, _ = self.fx.run("--arch", "aarch64")  # appended: x86_64 and aarch64
        self.assertIn("beta_x86_64", res)
        argv = ["--manifest", str(self.fx.manifest), "--dest", str(self.fx.dest),
                "--mirror", str(self.fx.mirror), "--arch", "aarch64"]
        code, results = fetch.run(argv, out=io.StringIO(), err=io.StringIO())
        self.assertEqual(sorted(r.entry["name"] for r in results), ["alpha", "gamma"])
        code, results = fetch.run(argv + ["--only", "beta_x86_64"], out=io.StringIO(), err=io.StringIO())
        self.assertEqual([r.entry["name"] for r in results], ["beta_x86_64"], "a named entry ignores --arch")
        code, results = fetch.run(argv[:-2] + ["--arch", "all", "--only", "onnxruntime"],
                                  out=io.StringIO(), err=io.StringIO())
        self.assertEqual([r.entry["name"] for r in results], ["beta_x86_64"], "--only accepts a role")

    def test_usage_errors_exit_2(self):
        code, _, _, err = self.fx.run("--only", "nope")
        self.assertEqual(code, 2)
        self.assertIn("unknown model name", err)
        self.fx.manifest.write_text('[[models]]\nname = "x"\nfile = "x.onnx"\n')
        code, _, _, err = self.fx.run()
        self.assertEqual(code, 2)
        self.assertIn("missing `sha256`", err)
        code, _, _, err = self.fx.run("--mirror", str(self.fx.root / "no-such-dir"), mirror=False)
        self.assertEqual(code, 2)
        proc = subprocess.run([sys.executable, str(HERE / "fetch.py"), "--bogus"], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 2)

    def test_cli_exit_codes(self):
        base = [sys.executable, str(HERE / "fetch.py"), "--manifest", str(self.fx.manifest),
                "--dest", str(self.fx.dest), "--arch", "x86_64", "-q"]
        proc = subprocess.run(base + ["--mirror", str(self.fx.mirror)], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("3 fetched", proc.stdout)
        (self.fx.dest / "alpha.onnx").write_bytes(b"x")
        proc = subprocess.run(base + ["--verify-only"], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 1)


if __name__ == "__main__":
    unittest.main()
