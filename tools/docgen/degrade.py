"""Turn a flat document rendering into a plausible phone or counter-camera photo.

Every effect has a strength in `Degrade` (0 switches it off, 1 is the default range); all
randomness comes from the generator passed in, so a seed reproduces the photo exactly.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, fields

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


@dataclass
class Degrade:
    rotation: float = 1.0      # 1 -> up to ±5° in-plane rotation
    perspective: float = 1.0   # 1 -> corners moved up to ~6 % of the document size
    background: float = 1.0    # 1 -> document fills 55-85 % of the frame width; 0 -> no surround
    lighting: float = 1.0      # uneven light, colour cast, glare
    blur: float = 1.0          # 1 -> gaussian radius up to ~1.6 px (after resize), some motion blur
    noise: float = 1.0         # 1 -> sensor noise sigma 1.5-7
    overexpose: float = 1.0    # 1 -> 12 % of photos slightly overexposed
    jpeg_min: int = 50
    jpeg_max: int = 95
    png_share: float = 0.15    # share of photos written as PNG instead of JPEG

    @classmethod
    def parse(cls, strength: float, overrides: list[str]) -> "Degrade":
        d = cls()
        for f in fields(cls):
            if f.type == "float" and f.name != "png_share":
                setattr(d, f.name, getattr(d, f.name) * strength)
        names = {f.name: f for f in fields(cls)}
        for item in overrides:
            key, sep, value = item.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in names:
                raise ValueError(f"bad --set {item!r}: expected KEY=VALUE with KEY one of {', '.join(names)}")
            setattr(d, key, int(value) if names[key].type == "int" else float(value))
        if not 1 <= d.jpeg_min <= d.jpeg_max <= 100:
            raise ValueError("jpeg_min and jpeg_max must satisfy 1 <= jpeg_min <= jpeg_max <= 100")
        return d


def _smooth_noise(rng, w, h, cells, lo=0.0, hi=1.0) -> np.ndarray:
    small = rng.uniform(lo, hi, (max(2, int(h / w * cells)), cells)).astype(np.float32)
    img = Image.fromarray(small, "F").resize((w, h), Image.BICUBIC)
    return np.asarray(img, np.float32)


def background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A table, counter or cloth surface."""
    kind = int(rng.integers(5))
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 0:  # wood
        base = np.asarray(rng.choice([(150, 100, 60), (120, 80, 50), (185, 140, 95), (95, 65, 45)]), np.float32)
        along = y if rng.random() < 0.6 else x  # grain runs across or along the frame
        grain = np.sin((along + 25 * _smooth_noise(rng, w, h, 6, -1, 1)) / rng.uniform(3, 7)) * 0.5 + 0.5
        streak = _smooth_noise(rng, w, h, 40, 0.85, 1.1)
        tone = (0.88 + 0.12 * grain) * streak
        arr = base * tone[..., None]
    elif kind == 1:  # light laminate / counter top
        base = np.asarray(rng.choice([(225, 225, 220), (205, 208, 210), (235, 230, 218)]), np.float32)
        arr = base * _smooth_noise(rng, w, h, 12, 0.94, 1.04)[..., None]
    elif kind == 2:  # dark cloth / mouse mat
        base = np.asarray(rng.choice([(40, 45, 55), (30, 30, 30), (55, 70, 60), (70, 40, 40)]), np.float32)
        weave = (np.sin(x * 1.7) * np.sin(y * 1.7)) * 4
        arr = base + weave[..., None] + rng.normal(0, 5, (h, w, 1)).astype(np.float32)
    elif kind == 3:  # granite / stone counter
        base = np.asarray(rng.choice([(120, 118, 115), (170, 160, 150), (90, 90, 95)]), np.float32)
        speck = rng.normal(0, 18, (h // 2 + 1, w // 2 + 1)).astype(np.float32)
        speck = np.asarray(Image.fromarray(speck, "F").resize((w, h), Image.NEAREST), np.float32)
        arr = base + speck[..., None] * np.asarray((1, 0.97, 0.95), np.float32)
    else:  # paper pile / desk pad, pale blue or green
        base = np.asarray(rng.choice([(200, 215, 225), (200, 220, 200), (230, 225, 200)]), np.float32)
        arr = base * _smooth_noise(rng, w, h, 8, 0.9, 1.05)[..., None]
    return arr


def _perspective_coeffs(dst, src):
    """PIL PERSPECTIVE coefficients mapping output points `dst` back to input points `src`."""
    a, b = [], []
    for (x, y), (u, v) in zip(dst, src):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    return np.linalg.solve(np.asarray(a, np.float64), np.asarray(b, np.float64)).tolist()


def _keystone(quad) -> float:
    """How far the document is from being photographed square-on: the larger relative
    difference between the lengths of opposite edges (0 for a flat, square-on shot)."""
    e = [math.dist(quad[k], quad[(k + 1) % 4]) for k in range(4)]
    return max(abs(e[0] - e[2]) / max(e[0], e[2]), abs(e[1] - e[3]) / max(e[1], e[3]))


def photograph(doc: Image.Image, rng: np.random.Generator, p: Degrade, out_width: int | None = None):
    """Place `doc` (RGBA) in a scene and photograph it. Returns (RGB image, quad, details)."""
    dw, dh = doc.size
    info: dict = {}
    fill = 0.97 - 0.42 * min(1.0, p.background) * rng.uniform(0.45, 1.0) if p.background > 0 else 1.0
    cw = int(dw / fill)
    ch = int(max(cw * 3 / 4, dh / fill * 1.02))
    if rng.random() < 0.25 and dh < dw:  # some phones shoot portrait
        cw, ch = int(max(cw, dw / fill)), int(max(cw * 1.25, dh / fill))
    info["fill"] = round(fill, 3)
    if out_width:  # work at camera resolution: shrink the document first (cheaper, no aliasing)
        s = out_width / cw
        if s < 1:
            doc = doc.resize((max(1, round(dw * s)), max(1, round(dh * s))), Image.LANCZOS)
        else:
            doc = doc.resize((round(dw * s), round(dh * s)), Image.BICUBIC)
        dw, dh = doc.size
        cw, ch = out_width, max(1, round(ch * s))

    # where the corners land
    angle = math.radians(rng.uniform(-5, 5) * p.rotation)
    cx = cw / 2 + rng.uniform(-1, 1) * (cw - dw) * 0.3
    cy = ch / 2 + rng.uniform(-1, 1) * (ch - dh) * 0.3
    corners = [(-dw / 2, -dh / 2), (dw / 2, -dh / 2), (dw / 2, dh / 2), (-dw / 2, dh / 2)]
    jit = 0.06 * p.perspective
    # keystone: one edge nearer the camera than the opposite one
    key_x, key_y = rng.uniform(-1, 1, 2) * jit
    dst = []
    for (x, y) in corners:
        sx = 1 + key_y * (1 if y > 0 else -1)
        sy = 1 + key_x * (1 if x > 0 else -1)
        x2, y2 = x * sx + rng.uniform(-1, 1) * jit * 0.3 * dw, y * sy + rng.uniform(-1, 1) * jit * 0.3 * dh
        xr = x2 * math.cos(angle) - y2 * math.sin(angle)
        yr = x2 * math.sin(angle) + y2 * math.cos(angle)
        dst.append((cx + xr, cy + yr))
    # keep the whole document in frame when there is a surround
    xs, ys = [q[0] for q in dst], [q[1] for q in dst]
    if p.background > 0:
        sx = min(1.0, (cw * 0.98) / (max(xs) - min(xs)), (ch * 0.98) / (max(ys) - min(ys)))
        dst = [(cx + (x - cx) * sx, cy + (y - cy) * sx) for x, y in dst]
        xs, ys = [q[0] for q in dst], [q[1] for q in dst]
        shift_x = max(0, 2 - min(xs)) - max(0, max(xs) - (cw - 2))
        shift_y = max(0, 2 - min(ys)) - max(0, max(ys) - (ch - 2))
        dst = [(x + shift_x, y + shift_y) for x, y in dst]
    info["rotation_deg"] = round(math.degrees(angle), 2)
    info["perspective"] = round(_keystone(dst), 3)

    src = [(0, 0), (dw, 0), (dw, dh), (0, dh)]
    warped = doc.transform((cw, ch), Image.PERSPECTIVE, _perspective_coeffs(dst, src), Image.BICUBIC)
    if p.background > 0:
        scene = background(rng, cw, ch)
    else:
        scene = np.full((ch, cw, 3), 235, np.float32)
    alpha = np.asarray(warped.getchannel("A"), np.float32) / 255
    # soft contact shadow
    if p.background > 0:
        off = rng.uniform(2, 10, 2) * (dw / 800)
        sh = warped.getchannel("A").transform((cw, ch), Image.AFFINE, (1, 0, -off[0], 0, 1, -off[1]))
        sh = np.asarray(sh.reduce(4).filter(ImageFilter.GaussianBlur(dw / 480)).resize((cw, ch), Image.BILINEAR),
                        np.float32) / 255
        scene *= (1 - 0.45 * sh)[..., None]
    docrgb = np.asarray(warped.convert("RGB"), np.float32)
    arr = scene * (1 - alpha[..., None]) + docrgb * alpha[..., None]

    # light: gradient, soft spot, colour cast
    if p.lighting > 0:
        # smooth fields: compute on a coarse grid in full-size coordinates, then upsample
        gw, gh = max(2, cw // 8), max(2, ch // 8)
        y, x = np.mgrid[0:gh, 0:gw].astype(np.float32)
        x *= cw / gw
        y *= ch / gh
        up = lambda f: np.asarray(Image.fromarray(f.astype(np.float32), "F").resize((cw, ch), Image.BILINEAR))  # noqa: E731
        gx, gy = rng.uniform(-1, 1, 2) * 0.28 * p.lighting
        gain = 1 + gx * (x / cw - 0.5) + gy * (y / ch - 0.5)
        sx, sy = rng.uniform(0.1, 0.9) * cw, rng.uniform(0.1, 0.9) * ch
        rad = rng.uniform(0.3, 0.8) * max(cw, ch)
        gain = gain + rng.uniform(-0.12, 0.18) * p.lighting * np.exp(-((x - sx) ** 2 + (y - sy) ** 2) / (2 * rad * rad))
        gain *= 1 - 0.2 * p.lighting * rng.uniform(0, 1) * (((x / cw - 0.5) ** 2 + (y / ch - 0.5) ** 2) * 2)
        cast = (1 + rng.uniform(-0.06, 0.06, 3) * p.lighting).astype(np.float32)
        arr = arr * up(gain)[..., None] * cast
        if rng.random() < 0.3 * min(1.0, p.lighting):  # glare on the laminate
            gx0, gy0 = rng.uniform(0.2, 0.8) * cw, rng.uniform(0.2, 0.8) * ch
            gr = rng.uniform(0.04, 0.12) * cw
            glare = up(np.exp(-((x - gx0) ** 2 + ((y - gy0) * 1.8) ** 2) / (2 * gr * gr))) * alpha
            peak = rng.uniform(40, 110)
            arr += glare[..., None] * peak * min(1.0, p.lighting)
            info["glare"] = True
            info["glare_level"] = round(float(peak * min(1.0, p.lighting)), 1)  # grey levels added at the centre
            info["glare_radius"] = round(float(gr / cw), 3)
    info.setdefault("glare_level", 0.0)
    if rng.random() < 0.12 * p.overexpose:
        g = rng.uniform(1.15, 1.4)
        arr = arr * np.float32(g) + np.float32(rng.uniform(5, 25))
        info["overexposed"] = round(float(g), 2)
    arr = np.clip(arr, 0, 255)
    img = Image.fromarray(arr.astype(np.uint8), "RGB")

    quad = [[round(x, 1), round(y, 1)] for x, y in dst]

    info["blur_px"] = 0.0
    if p.blur > 0:
        r = rng.uniform(0, 1.6) * p.blur
        if r > 0.15:
            img = img.filter(ImageFilter.GaussianBlur(r))
        info["blur_px"] = round(float(r), 2)
        if rng.random() < 0.15 * min(1.0, p.blur):  # hand shake: short motion blur
            length = int(rng.integers(3, 6))
            k = np.zeros((5, 5), np.float32)
            if rng.random() < 0.5:
                k[2, (5 - length) // 2:(5 - length) // 2 + length] = 1
            else:
                k[(5 - length) // 2:(5 - length) // 2 + length, 2] = 1
            img = img.filter(ImageFilter.Kernel((5, 5), k.flatten().tolist(), scale=float(k.sum())))
            info["motion_blur"] = length
    if p.noise > 0:
        sigma = rng.uniform(1.5, 7) * p.noise
        a = np.asarray(img, np.float32)
        lum = rng.standard_normal(a.shape[:2], dtype=np.float32)[..., None] * sigma
        chroma = rng.standard_normal(a.shape, dtype=np.float32) * (sigma * 0.4)
        img = Image.fromarray(np.clip(a + lum + chroma, 0, 255).astype(np.uint8), "RGB")
        info["noise_sigma"] = round(float(sigma), 2)
    return img, quad, info


def encode(img: Image.Image, rng: np.random.Generator, p: Degrade, clean: bool) -> tuple[str, bytes, dict]:
    """Encode as the camera would: JPEG at a random quality, sometimes PNG. Returns (ext, bytes, info)."""
    buf = io.BytesIO()
    if clean:
        img.save(buf, "PNG", compress_level=3)
        return "png", buf.getvalue(), {}
    q = int(rng.integers(p.jpeg_min, p.jpeg_max + 1))
    if rng.random() < p.png_share:
        # a screenshot of a photo someone already sent: JPEG artefacts, PNG container
        tmp = io.BytesIO()
        img.save(tmp, "JPEG", quality=q)
        Image.open(io.BytesIO(tmp.getvalue())).convert("RGB").save(buf, "PNG", compress_level=3)
        return "png", buf.getvalue(), {"jpeg_quality": q}
    img.save(buf, "JPEG", quality=q)
    return "jpg", buf.getvalue(), {"jpeg_quality": q}
