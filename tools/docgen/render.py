"""Flat renderings of the three documents, as a scanner would see them.

Each `render_*` returns an RGBA image (alpha marks the document's outline, e.g. the card's
rounded corners). Randomness (background pattern phase, small layout jitter) comes from the
generator passed in.
"""

from __future__ import annotations

import glob
import math
import os

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

from content import Person

# key: (file name, Debian package, family of the face to use in a .ttc collection)
FONT_FILES = {
    "sans": ("NotoSansCJK-Regular.ttc", "fonts-noto-cjk", "Noto Sans CJK SC"),
    "sans-bold": ("NotoSansCJK-Bold.ttc", "fonts-noto-cjk", "Noto Sans CJK SC"),
    "serif": ("NotoSerifCJK-Regular.ttc", "fonts-noto-cjk", "Noto Serif CJK SC"),
    "serif-bold": ("NotoSerifCJK-Bold.ttc", "fonts-noto-cjk", "Noto Serif CJK SC"),
    "kai": ("ukai.ttc", "fonts-arphic-ukai", "AR PL UKai CN"),       # 楷体
    "ming": ("uming.ttc", "fonts-arphic-uming", "AR PL UMing CN"),   # 明体 (宋体-like)
    "zenhei": ("wqy-zenhei.ttc", "fonts-wqy-zenhei", "WenQuanYi Zen Hei"),  # 黑体
}
# the faces the ID cards use (and that every run needs); the others are looked up when asked for
CORE_FONTS = ("sans", "sans-bold", "serif", "serif-bold")
FONT_ROOTS = ("/usr/share/fonts", "/usr/local/share/fonts", os.path.expanduser("~/.local/share/fonts"))


class FontMissing(RuntimeError):
    pass


class Fonts:
    """CJK faces from Debian packages: Noto Sans/Serif CJK (fonts-noto-cjk) always, AR PL UKai
    (fonts-arphic-ukai), AR PL UMing (fonts-arphic-uming) and WenQuanYi Zen Hei (fonts-wqy-zenhei)
    when a licence asks for them."""

    def __init__(self) -> None:
        self.roots = [os.environ["DOCGEN_FONT_DIR"]] if os.environ.get("DOCGEN_FONT_DIR") else list(FONT_ROOTS)
        self.paths: dict[str, str] = {}
        self._index: dict[tuple[str, bool], int] = {}
        self._cache: dict[tuple, ImageFont.FreeTypeFont] = {}
        self._glyph: dict[tuple[str, str], bool] = {}
        self.require(CORE_FONTS)

    def require(self, keys) -> None:
        """Find the files of `keys` now; FontMissing names the Debian package of a missing one."""
        for key in keys:
            if key in self.paths:
                continue
            name, package, _ = FONT_FILES[key]
            for root in self.roots:
                hits = sorted(glob.glob(os.path.join(root, "**", name), recursive=True))
                if hits:
                    self.paths[key] = hits[0]
                    break
            else:
                raise FontMissing(
                    f"font {name} not found under {', '.join(self.roots)}: install the Debian package "
                    f"{package} (apt-get install {package}) or point DOCGEN_FONT_DIR at a "
                    f"folder holding {name}"
                )

    def _face_index(self, key: str, mono: bool) -> int:
        k = (key, mono)
        if k not in self._index:
            family = FONT_FILES[key][2]
            want = family.replace(" CJK", " Mono CJK") if mono else family
            for i in range(12):
                try:
                    name = ImageFont.truetype(self.paths[key], 12, index=i).getname()[0]
                except OSError:
                    break
                if name == want:
                    self._index[k] = i
                    break
            else:
                raise FontMissing(f"no face {want!r} in {self.paths[key]} (package {FONT_FILES[key][1]})")
        return self._index[k]

    def get(self, key: str, size: float, mono: bool = False) -> ImageFont.FreeTypeFont:
        self.require((key,))
        size = max(6, int(round(size)))
        k = (key, size, mono)
        if k not in self._cache:
            self._cache[k] = ImageFont.truetype(self.paths[key], size, index=self._face_index(key, mono))
        return self._cache[k]

    def missing(self, key: str, text: str) -> str:
        """The characters of `text` that the face `key` has no glyph for (they would print as a box)."""
        font = self.get(key, 24)
        out = []
        for ch in text:
            if ch.isspace():
                continue
            k = (key, ch)
            if k not in self._glyph:
                self._glyph[k] = _mask(font, ch) != _mask(font, "\U0010FFFD")
            if not self._glyph[k]:
                out.append(ch)
        return "".join(out)


def _mask(font, ch: str):
    m = font.getmask(ch)
    return m.size, bytes(m)


# --- drawing helpers -----------------------------------------------------------------------

def text_spaced(draw: ImageDraw.ImageDraw, xy, text: str, font, fill, spacing: float = 0.0) -> float:
    """Draw text char by char with extra spacing; returns the x after the last char."""
    x, y = xy
    for ch in text:
        draw.text((x, y), ch, font=font, fill=fill)
        x += font.getlength(ch) + spacing
    return x


def text_justified(draw, xy, text: str, width: float, font, fill) -> None:
    """Spread the characters of a short label evenly over `width` (如 名 称 / 法定代表人)."""
    if len(text) == 1:
        draw.text(xy, text, font=font, fill=fill)
        return
    widths = [font.getlength(c) for c in text]
    gap = (width - sum(widths)) / (len(text) - 1)
    x = xy[0]
    for c, w in zip(text, widths):
        draw.text((x, xy[1]), c, font=font, fill=fill)
        x += w + gap


def wrap(text: str, font, width: float, first_width: float | None = None) -> list[str]:
    """Greedy char wrap (Chinese has no spaces); no closing mark starts a line, no opening one ends it."""
    lines, cur, cur_w = [], "", 0.0
    limit = first_width if first_width is not None else width
    no_start = "，。；、）：”"
    no_end = "（“"
    for ch in text:
        w = font.getlength(ch)
        if cur and cur_w + w > limit and ch not in no_start:
            carry = ""
            if cur[-1] in no_end:
                cur, carry = cur[:-1], cur[-1]
            lines.append(cur)
            cur, cur_w = carry, font.getlength(carry) if carry else 0.0
            limit = width
        cur += ch
        cur_w += w
    if cur:
        lines.append(cur)
    return lines


NO_LINE_START = "，。；、）：”》"
NO_LINE_END = "（“《"


def wrap_strict(text: str, font, width: float) -> list[str]:
    """Char wrap that never lets a line run past `width`: no closing mark starts a line (the
    character before it moves down with it), no opening mark ends one, a number is not split
    when the line has room to break before it. Joining the lines gives `text` back."""
    lines: list[str] = []
    cur = ""
    for ch in text:
        if cur and font.getlength(cur + ch) > width:
            carry = ""
            if _word(ch) and _word(cur[-1]):  # a number or a Latin word moves down whole
                k = len(cur)
                while k > 0 and _word(cur[k - 1]):
                    k -= 1
                if k > 0:
                    cur, carry = cur[:k], cur[k:]
            elif ch in NO_LINE_START:
                while len(cur) > 1 and cur[-1] in NO_LINE_START:  # keep runs like ）； together
                    carry = cur[-1] + carry
                    cur = cur[:-1]
                if len(cur) > 1:
                    carry = cur[-1] + carry
                    cur = cur[:-1]
            while len(cur) > 1 and cur[-1] in NO_LINE_END:
                carry = cur[-1] + carry
                cur = cur[:-1]
            lines.append(cur)
            cur = carry
        cur += ch
    if cur:
        lines.append(cur)
    return lines


def _word(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch in ".-")


class LayoutOverflow(Exception):
    """The text does not fit at this size: the caller shrinks and tries again."""


class Mark:
    """One piece of text put on the page, with the box its ink may cover."""
    __slots__ = ("role", "field", "text", "box", "cell")

    def __init__(self, role, field, text, box, cell):
        self.role, self.field, self.text, self.box, self.cell = role, field, text, box, cell

    def __repr__(self) -> str:
        return f"Mark({self.role}, {self.field}, {self.text!r}, {tuple(round(v) for v in self.box)})"


class Sheet:
    """Draws text and records it: which field each line belongs to (so the renderer can report
    exactly what it printed), where it went and which cell it had to stay in. `dry` records
    without drawing, for trying sizes."""

    def __init__(self, img: Image.Image | None, size=None, dry: bool = False):
        self.img = img
        self.size = img.size if img is not None else size
        self.dry = dry or img is None
        self.d = None if self.dry else ImageDraw.Draw(img)
        self._probe = ImageDraw.Draw(Image.new("L", (1, 1)))
        self.marks: list[Mark] = []
        self.drawn: dict[str, str] = {}
        self.obstacles: dict[str, tuple] = {}  # name -> box of a picture (emblem, QR, seal)

    def refresh(self) -> None:
        """After pasting into the image, draw on the new pixels."""
        if not self.dry:
            self.d = ImageDraw.Draw(self.img)

    def text(self, xy, s: str, font, fill=(25, 25, 25), *, role="deco", field=None, spacing=0.0,
             anchor="ls", cell=None) -> float:
        """Draw `s` at `xy` (baseline-left by default), `spacing` px between characters; returns
        the x after the last character."""
        x, y = xy
        if spacing:
            if anchor[0] != "l":
                raise ValueError("spaced text is left-anchored")
            boxes = []
            for ch in s:
                if not self.dry:
                    self.d.text((x, y), ch, font=font, fill=fill, anchor=anchor)
                boxes.append(self._probe.textbbox((x, y), ch, font=font, anchor=anchor))
                x += font.getlength(ch) + spacing
            box = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                   max(b[3] for b in boxes))
            end = x - spacing
        else:
            if not self.dry:
                self.d.text((x, y), s, font=font, fill=fill, anchor=anchor)
            box = self._probe.textbbox((x, y), s, font=font, anchor=anchor)
            end = box[2]
        if s.strip():
            self.marks.append(Mark(role, field, s, box, cell))
        if field is not None:
            self.drawn[field] = self.drawn.get(field, "") + s
        return end

    def justified(self, xy, s: str, width: float, font, fill=(25, 25, 25), *, role="label", cell=None) -> None:
        """Spread the characters of a short label evenly over `width` (名　称 / 法定代表人)."""
        if len(s) <= 1:
            self.text(xy, s, font, fill, role=role, cell=cell)
            return
        gap = (width - sum(font.getlength(c) for c in s)) / (len(s) - 1)
        self.text(xy, s, font, fill, role=role, spacing=max(0.0, gap), cell=cell)

    def obstacle(self, name: str, box) -> None:
        self.obstacles[name] = tuple(float(v) for v in box)


def guilloche(w: int, h: int, rng: np.random.Generator, colors, base, density: float = 1.0,
              rosette=None, flat: bool = False) -> np.ndarray:
    """A light security-print pattern: families of thin wavy lines and an optional rosette.

    `flat` paints plain paper but draws the same random numbers (layout checks run faster)."""
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    if flat:
        rng.uniform(size=4 * len(colors))
        return img
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    for i, col in enumerate(colors):
        lam = (9 + 5 * i + rng.uniform(-1, 1)) / density
        amp = rng.uniform(2.0, 4.0)
        per = rng.uniform(50, 120) / density
        ph = rng.uniform(0, 2 * math.pi)
        if i % 2 == 0:
            v = np.sin(2 * math.pi * (y / lam) + amp * np.sin(2 * math.pi * x / per + ph))
        else:
            v = np.sin(2 * math.pi * (x + y * 0.6) / lam + amp * np.sin(2 * math.pi * y / per + ph))
        line = np.clip((np.abs(v) - 0.86) / 0.14, 0, 1) ** 1.5 * 0.55
        img += line[..., None] * (np.asarray(col, np.float32) - img)
    if rosette is not None:
        cx, cy, r0, col = rosette
        dx, dy = x - cx, y - cy
        r = np.sqrt(dx * dx + dy * dy)
        th = np.arctan2(dy, dx)
        v = np.sin(r / (3.2 / density) + 4 * np.sin(12 * th))
        fade = np.clip(1 - r / r0, 0, 1)
        line = np.clip((np.abs(v) - 0.85) / 0.15, 0, 1) * fade * 0.6
        img += line[..., None] * (np.asarray(col, np.float32) - img)
    return img


def to_image(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def rounded_mask(size, radius: int) -> Image.Image:
    m = Image.new("L", size, 0)
    ImageDraw.Draw(m).rounded_rectangle((0, 0, size[0] - 1, size[1] - 1), radius=radius, fill=255)
    return m


def star_points(cx, cy, r, rot=-math.pi / 2):
    pts = []
    for k in range(10):
        rr = r if k % 2 == 0 else r * 0.382
        a = rot + k * math.pi / 5
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    return pts


def emblem(draw, cx, cy, r) -> None:
    """A stylised national emblem: red disc, gold ring, five gold stars, gate silhouette."""
    gold, red = (222, 170, 40), (205, 35, 35)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=gold)
    draw.ellipse((cx - r * 0.82, cy - r * 0.82, cx + r * 0.82, cy + r * 0.82), fill=red)
    draw.polygon(star_points(cx, cy - r * 0.42, r * 0.22), fill=gold)
    for k, a in enumerate((-40, -15, 15, 40)):
        ang = math.radians(a - 90)
        draw.polygon(star_points(cx + r * 0.42 * math.cos(ang) * 1.1, cy - r * 0.42 + r * 0.38 * math.sin(ang) + r * 0.38,
                                 r * 0.08), fill=gold)
    # Tiananmen gate, very simplified
    draw.rectangle((cx - r * 0.45, cy + r * 0.12, cx + r * 0.45, cy + r * 0.42), fill=gold)
    draw.polygon([(cx - r * 0.55, cy + r * 0.14), (cx, cy - r * 0.02), (cx + r * 0.55, cy + r * 0.14)], fill=gold)
    for k in range(-2, 3):
        draw.rectangle((cx + k * r * 0.16 - r * 0.035, cy + r * 0.26, cx + k * r * 0.16 + r * 0.035, cy + r * 0.42), fill=red)
    draw.rectangle((cx - r * 0.6, cy + r * 0.5, cx + r * 0.6, cy + r * 0.58), fill=gold)


def photo_placeholder(w: int, h: int, rng: np.random.Generator) -> Image.Image:
    """Grey portrait area: light backdrop with a darker head-and-shoulders silhouette."""
    bg = int(rng.integers(205, 235))
    img = Image.new("L", (w, h), bg)
    d = ImageDraw.Draw(img)
    tone = int(rng.integers(95, 150))
    cx = w * rng.uniform(0.46, 0.54)
    d.ellipse((cx - w * 0.48, h * 0.70, cx + w * 0.48, h * 1.35), fill=tone)  # shoulders
    d.rectangle((cx - w * 0.12, h * 0.52, cx + w * 0.12, h * 0.80), fill=tone + 15)  # neck
    d.ellipse((cx - w * 0.22, h * 0.16, cx + w * 0.22, h * 0.66), fill=tone + 25)  # face
    d.chord((cx - w * 0.24, h * 0.12, cx + w * 0.24, h * 0.52), 180, 360, fill=max(30, tone - 60))  # hair
    img = img.filter(ImageFilter.GaussianBlur(w / 60))
    return Image.merge("RGB", (img, img, img))


# --- ID card (85.6 mm x 54 mm) ------------------------------------------------------------

CARD_MM = (85.6, 54.0)
LABEL_BLUE = (40, 110, 170)
INK = (25, 25, 25)


def _card_base(fonts, mm: float, rng, front: bool):
    w, h = int(CARD_MM[0] * mm), int(CARD_MM[1] * mm)
    if front:
        arr = guilloche(w, h, rng, [(168, 204, 230), (234, 188, 204), (178, 218, 206)], (246, 246, 242),
                        density=10 / mm, rosette=(w * 0.42, h * 0.55, w * 0.35, (232, 205, 214)))
    else:
        arr = guilloche(w, h, rng, [(176, 206, 232), (236, 198, 184), (190, 218, 230)], (246, 245, 240),
                        density=10 / mm, rosette=(w * 0.6, h * 0.62, w * 0.45, (226, 204, 196)))
    # a faint darker vignette at the edges, as printed cards have
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    edge = np.minimum(np.minimum(x, w - x), np.minimum(y, h - y)) / (3 * mm)
    arr *= (0.965 + 0.035 * np.clip(edge, 0, 1))[..., None]
    img = to_image(arr).convert("RGBA")
    img.putalpha(rounded_mask((w, h), int(3.2 * mm)))
    return img


def id_address_lines(address: str, fonts: Fonts, mm: float):
    """The card's address font and lines: three lines at most, so a long address is set a
    little smaller (the card prints the whole address, and the truth is the whole address)."""
    size = 3.3 * mm
    font = fonts.get("sans", size)
    lines = wrap(address, font, 36.5 * mm)
    while len(lines) > 3:  # rare (about 1 in 120)
        size -= 0.05 * mm
        if size < 2.6 * mm:
            raise LayoutOverflow(f"address too long for the card: {address}")
        font = fonts.get("sans", size)
        lines = wrap(address, font, 36.5 * mm)
    return font, lines


def render_id_front(p: Person, fonts: Fonts, rng: np.random.Generator, mm: float = 12.0) -> Image.Image:
    img = _card_base(fonts, mm, rng, front=True)
    d = ImageDraw.Draw(img)
    jx, jy = rng.uniform(-0.4, 0.4, 2) * mm  # print registration varies a little card to card
    X = lambda v: v * mm + jx  # noqa: E731
    Y = lambda v: v * mm + jy  # noqa: E731
    lab = fonts.get("sans", 2.7 * mm)
    val = fonts.get("sans-bold", 3.3 * mm)
    val_r = fonts.get("sans", 3.3 * mm)
    num = fonts.get("sans-bold", 3.9 * mm, mono=True)

    # photo
    pw, ph = int(25 * mm), int(32 * mm)
    img.paste(photo_placeholder(pw, ph, rng), (int(X(54.5)), int(Y(6.5))))

    text_spaced(d, (X(5.5), Y(5.5)), "姓名", lab, LABEL_BLUE, 0.9 * mm)
    d.text((X(15.5), Y(5.0)), p.name, font=val, fill=INK)
    text_spaced(d, (X(5.5), Y(12.0)), "性别", lab, LABEL_BLUE, 0.9 * mm)
    d.text((X(15.5), Y(11.6)), "男" if p.male else "女", font=val_r, fill=INK)
    text_spaced(d, (X(26.0), Y(12.0)), "民族", lab, LABEL_BLUE, 0.9 * mm)
    d.text((X(35.5), Y(11.6)), p.nation, font=val_r, fill=INK)
    text_spaced(d, (X(5.5), Y(18.5)), "出生", lab, LABEL_BLUE, 0.9 * mm)
    x = X(15.5)
    for part, unit in ((str(p.birth.year), "年"), (str(p.birth.month), "月"), (str(p.birth.day), "日")):
        d.text((x, Y(18.1)), part, font=val_r, fill=INK)
        x += val_r.getlength(part) + 0.9 * mm
        d.text((x, Y(18.5)), unit, font=lab, fill=LABEL_BLUE)
        x += lab.getlength(unit) + 1.2 * mm
    text_spaced(d, (X(5.5), Y(25.0)), "住址", lab, LABEL_BLUE, 0.9 * mm)
    addr_font, addr_lines = id_address_lines(p.address, fonts, mm)
    for k, line in enumerate(addr_lines):
        d.text((X(15.5), Y(24.6 + 5.0 * k)), line, font=addr_font, fill=INK)
    text_spaced(d, (X(5.5), Y(44.5)), "公民身份号码", lab, LABEL_BLUE, 0.25 * mm)
    text_spaced(d, (X(28.5), Y(43.6)), p.id_number, num, INK, 0.55 * mm)
    return img


def render_id_back(p: Person, fonts: Fonts, rng: np.random.Generator, mm: float = 12.0) -> Image.Image:
    img = _card_base(fonts, mm, rng, front=False)
    d = ImageDraw.Draw(img)
    jx, jy = rng.uniform(-0.4, 0.4, 2) * mm
    X = lambda v: v * mm + jx  # noqa: E731
    Y = lambda v: v * mm + jy  # noqa: E731
    # faint Great Wall band across the lower middle
    wall = Image.new("L", img.size, 0)
    wd = ImageDraw.Draw(wall)
    pts = [(X(0), Y(33))]
    for k in range(0, 90, 3):
        pts.append((X(k), Y(31 + 2.5 * math.sin(k / 9.0))))
    pts += [(X(88), Y(36)), (X(0), Y(36))]
    wd.polygon(pts, fill=45)
    for k in range(0, 88, 9):
        yy = 31 + 2.5 * math.sin(k / 9.0)
        wd.rectangle((X(k), Y(yy - 3), X(k + 2.5), Y(yy)), fill=45)
    tint = Image.new("RGBA", img.size, (190, 170, 150, 255))
    tint.putalpha(wall.filter(ImageFilter.GaussianBlur(mm * 0.3)))
    img.alpha_composite(tint)
    d = ImageDraw.Draw(img)

    emblem(d, X(13.5), Y(12.5), 8.2 * mm)
    title1 = fonts.get("sans-bold", 4.2 * mm)
    title2 = fonts.get("sans-bold", 6.8 * mm)
    text_spaced(d, (X(29.0), Y(6.5)), "中华人民共和国", title1, INK, 1.6 * mm)
    text_spaced(d, (X(27.0), Y(14.5)), "居民身份证", title2, INK, 2.6 * mm)
    lab = fonts.get("sans", 2.7 * mm)
    val = fonts.get("sans", 3.1 * mm)
    text_spaced(d, (X(14.0), Y(39.7)), "签发机关", lab, INK, 0.5 * mm)
    d.text((X(29.5), Y(39.3)), p.authority, font=val, fill=INK)
    text_spaced(d, (X(14.0), Y(46.2)), "有效期限", lab, INK, 0.5 * mm)
    to = p.valid_to.strftime("%Y.%m.%d") if p.valid_to else "长期"
    d.text((X(29.5), Y(45.8)), f"{p.valid_from:%Y.%m.%d}-{to}", font=val, fill=INK)
    return img


# --- pieces of the business licence (the layouts are in layouts.py) ---------------------

def qr_like(modules: int, box: int, rng: np.random.Generator) -> Image.Image:
    grid = rng.random((modules, modules)) < 0.5
    for ox, oy in ((0, 0), (modules - 7, 0), (0, modules - 7)):
        grid[oy:oy + 7, ox:ox + 7] = False
        grid[oy:oy + 7, ox] = grid[oy:oy + 7, ox + 6] = True
        grid[oy, ox:ox + 7] = grid[oy + 6, ox:ox + 7] = True
        grid[oy + 2:oy + 5, ox + 2:ox + 5] = True
        # quiet separator
        if ox == 0:
            grid[oy:oy + 8 if oy == 0 else oy + 7, 7] = False
        else:
            grid[oy:oy + 8, ox - 1] = False
        if oy == 0:
            grid[7, ox:ox + 7] = False
        else:
            grid[oy - 1, ox:ox + 8] = False
    grid[6, 8:modules - 8] = np.arange(modules - 16) % 2 == 0
    grid[8:modules - 8, 6] = np.arange(modules - 16) % 2 == 0
    img = Image.fromarray(np.where(grid, 0, 255).astype(np.uint8), "L")
    img = img.resize((modules * box, modules * box), Image.NEAREST)
    out = Image.new("L", (img.width + 2 * box, img.height + 2 * box), 255)
    out.paste(img, (box, box))
    return out


def seal(fonts: Fonts, text: str, r: int, rng: np.random.Generator) -> Image.Image:
    """A red registration seal: ring, arc text, star; returned as an RGB multiply layer."""
    size = 2 * r + 8
    layer = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(layer)
    c = size / 2
    d.ellipse((c - r, c - r, c + r, c + r), outline=255, width=max(3, r // 18))
    d.polygon(star_points(c, c, r * 0.30), fill=255)
    f = fonts.get("sans-bold", r * 0.24)
    n = len(text)
    span = min(250.0, 22.0 * n)
    for k, ch in enumerate(text):
        ang = math.radians(-90 - span / 2 + span * (k + 0.5) / n)
        tile = Image.new("L", (int(r * 0.34), int(r * 0.34)), 0)
        ImageDraw.Draw(tile).text((tile.width / 2, tile.height / 2), ch, font=f, fill=255, anchor="mm")
        tile = tile.rotate(-math.degrees(ang) - 90, resample=Image.BICUBIC, expand=True)
        px = c + r * 0.72 * math.cos(ang) - tile.width / 2
        py = c + r * 0.72 * math.sin(ang) - tile.height / 2
        layer.paste(255, (int(px), int(py)), tile)
    d.text((c, c + r * 0.55), "登记专用", font=fonts.get("sans-bold", r * 0.15), fill=255, anchor="mm")
    # uneven ink
    ink = np.asarray(layer, np.float32) / 255
    speck = rng.random(ink.shape) * 0.45 + 0.55
    lo = np.asarray(Image.fromarray((rng.random((size // 12 + 1, size // 12 + 1)) * 255).astype(np.uint8))
                    .resize((size, size), Image.BILINEAR), np.float32) / 255
    ink = ink * speck * (0.55 + 0.45 * lo) * rng.uniform(0.7, 0.9)
    red = np.asarray((215, 35, 40), np.float32) / 255
    mult = 1 - ink[..., None] * (1 - red)
    out = Image.fromarray((mult * 255).astype(np.uint8), "RGB").rotate(
        rng.uniform(-20, 20), resample=Image.BICUBIC, fillcolor=(255, 255, 255))
    return out.filter(ImageFilter.GaussianBlur(0.6))


def ornate_border(img: Image.Image) -> None:
    """The brown frame with a lattice band of the licence copies."""
    w, h = img.size
    d = ImageDraw.Draw(img)
    brown = (170, 120, 70)
    m, band = 22, 34
    d.rectangle((m, m, w - m, h - m), outline=brown, width=4)
    d.rectangle((m + band, m + band, w - m - band, h - m - band), outline=brown, width=2)
    # repeating lattice in the band
    step = 17
    light = (205, 165, 115)
    for x in range(m + 6, w - m - 6, step):
        for y in (m + 6, h - m - band + 6):
            d.polygon([(x, y + 11), (x + 8, y + 3), (x + 16, y + 11), (x + 8, y + 19)], outline=light)
    for y in range(m + 6, h - m - 6, step):
        for x in (m + 6, w - m - band + 6):
            d.polygon([(x, y + 8), (x + 11, y), (x + 22, y + 8), (x + 11, y + 16)], outline=light)
