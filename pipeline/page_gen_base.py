"""Shared parts of the router's page generator (pipeline/page_gen.py): fonts, text, paper, ink, scans.

Fonts: pymupdf's built-ins, DejaVu (Debian) and the OFL script fonts of PyPI's fontpkg-* packages for
handwriting. HELDOUT_FONTS never reach a tuning page (`_pool(fonts, test=False)` drops them).
`_compose` lays an ink mask on paper (skew, blur, sensor noise, ink that fades or skips); `_scan` is
what a scanner or copier does afterwards (resolution loss, JPEG, bitonal thresholding, dark toner).
"""

from __future__ import annotations

import functools
import importlib.util
import io
import random
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

HAND_PACKAGES = ("fontpkg_caveat", "fontpkg_dancing_script", "fontpkg_indie_flower", "fontpkg_kalam",
                 "fontpkg_shadows_into_light", "fontpkg_zeyada", "fontpkg_satisfy")
# never in tuning pages: two script fonts, two typewriter faces, one book face
HELDOUT_FONTS = ("Zeyada", "Satisfy", "IBMPlexMono", "DejaVuSansMono-Oblique", "DejaVuSerifCondensed-Italic")
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")

VOCAB = ("the of and to in a is that for it as was with be by on not he this are or his from at which but have "
         "an they you were her all she there would their we him been has when who will more no if out so said what "
         "up its about into than them can only other new some could time these two may then do first any my now "
         "such like our over man me even most made after also did many before must through back years where much "
         "your way well down should because each just those people how too little state good very make world still "
         "own see men work long here get both between life being under never day same another know while last "
         "letter reply regard matter account order receipt enclosed further payment office copy date shipment "
         "committee meeting report council request").split()



def _rnd(kind: str, seed: int) -> random.Random:
    return random.Random(zlib.crc32(f"{kind}:{seed}".encode()))


@functools.lru_cache(maxsize=None)
def _font_bytes(name: str) -> bytes:
    """A font file's bytes: pymupdf's built-ins ('cour', 'tiro', 'helv', 'china-t', ...) or a path."""
    if "/" in name:
        return Path(name).read_bytes()
    import pymupdf

    return bytes(pymupdf.Font(name).buffer)


def _font(name: str, px: float) -> ImageFont.FreeTypeFont:
    return _font_px(name, max(6, int(px)))


@functools.lru_cache(maxsize=256)
def _font_px(name: str, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(io.BytesIO(_font_bytes(name)), px)


@functools.lru_cache(maxsize=1)
def hand_fonts() -> tuple[str, ...]:
    """Paths of the handwriting-like fonts installed (fontpkg-* from PyPI; Debian's where present)."""
    paths, missing = [], []
    for pkg in HAND_PACKAGES:
        spec = importlib.util.find_spec(pkg)
        if spec and spec.origin:
            paths += sorted(str(p) for p in (Path(spec.origin).parent / "files").glob("*.ttf") if "Bold" not in p.name)
        else:
            missing.append(pkg.replace("_", "-"))
    if missing:
        raise RuntimeError(f"page_gen needs the handwriting fonts {', '.join(missing)}: pip install -e '.[test]' "
                           f"(or pip install {' '.join(missing)})")
    return tuple(paths)


def _pool(fonts, test: bool) -> list[str]:
    keep = [f for f in fonts if test or not any(h in f for h in HELDOUT_FONTS)]
    return keep or list(fonts)


def mono_fonts() -> list[str]:
    """Typewriter faces: Courier (pymupdf: regular, oblique, bold), DejaVu Sans Mono, IBM Plex Mono if installed."""
    out = ["cour", "cour", "coit", "cobo", str(DEJAVU / "DejaVuSansMono.ttf"), str(DEJAVU / "DejaVuSansMono-Bold.ttf"),
           str(DEJAVU / "DejaVuSansMono-Oblique.ttf")]
    spec = importlib.util.find_spec("fontpkg_ibm_plex_mono")
    if spec and spec.origin:
        out += [str(p) for p in (Path(spec.origin).parent / "files").glob("*Regular*.ttf")]
    return [f for f in out if "/" not in f or Path(f).exists()]


def text_fonts() -> list[str]:
    """Book and sans faces for printed pages: Times/Helvetica (roman, italic, bold) and DejaVu families."""
    out = ["tiro", "tiro", "helv", "helv", "tiit", "heit", "tibo"]
    out += [str(DEJAVU / f"{n}.ttf") for n in ("DejaVuSerif", "DejaVuSans", "DejaVuSerifCondensed", "DejaVuSansCondensed",
                                                  "DejaVuSerif-Italic", "DejaVuSans-ExtraLight", "DejaVuSerifCondensed-Italic")]
    return [f for f in out if "/" not in f or Path(f).exists()]


TEXT_FONTS = [f for f in text_fonts() if "Italic" not in f and "Light" not in f and "Condensed" not in f]  # plain ones


def _sentence(r: random.Random) -> str:
    words = [r.choice(VOCAB) for _ in range(r.randint(5, 16))]
    if r.random() < 0.2:
        words.insert(r.randrange(len(words)), str(r.randint(2, 1950)))
    words[0] = words[0].capitalize()
    if len(words) > 7 and r.random() < 0.5:
        words[r.randint(2, len(words) - 3)] += ","
    return " ".join(words) + r.choice(".....?;")


def _wrap(text: str, font, width: float) -> list[str]:
    lines, cur = [], ""
    for w in text.split():
        if cur and font.getlength(cur + " " + w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    return lines + [cur] if cur else lines


def _paper(r: random.Random, w: int, h: int, aged: float) -> np.ndarray:
    """Paper colour (white .. yellowed), low-frequency stains and fine grain, float32 HxWx3."""
    yellow = np.array([r.uniform(215, 240), r.uniform(195, 225), r.uniform(150, 195)], np.float32)
    base = np.float32(255) * (1 - aged) + yellow * aged
    rng = np.random.default_rng(r.randrange(1 << 30))
    shade = 1 - aged * 0.06 * cv2.resize(rng.standard_normal((6, 5), np.float32), (w, h))
    grain = rng.standard_normal((h // 2, w // 2), np.float32)  # half-res grain: cheaper, same look once blurred
    shade += cv2.resize(grain, (w, h), interpolation=cv2.INTER_NEAREST) * np.float32((2 + 4 * aged) / 255)
    return cv2.merge([shade * base[0], shade * base[1], shade * base[2]])


def _compose(r: random.Random, mask: Image.Image, paper: np.ndarray, ink=(20, 20, 25), skew=0.0, blur=0.0,
             noise=0.0, fade=0.0) -> Image.Image:
    """Ink layer (L, 255 = full ink) over paper; optional skew, blur, sensor noise and `fade`: the ink's
    strength wanders over the page by up to this share (a worn ribbon, a drying pen, uneven pressure)."""
    if skew:
        mask = mask.rotate(skew, resample=Image.Resampling.BILINEAR, fillcolor=0)
    a = np.asarray(mask, np.float32) * np.float32(1 / 255)
    rng = np.random.default_rng(r.randrange(1 << 30))
    if fade:
        low = cv2.resize(rng.uniform(0, 1, (r.randint(4, 40), r.randint(4, 30))).astype(np.float32), a.shape[::-1])
        a = a * (np.float32(1 - fade) + np.float32(fade) * low)
    if blur:
        a = cv2.GaussianBlur(a, (0, 0), blur)
    if noise:
        paper = paper + cv2.merge([rng.standard_normal(a.shape, np.float32) * np.float32(noise)] * 3)
    img = paper + (np.asarray(ink, np.float32) - paper) * a[..., None]
    return Image.fromarray(cv2.convertScaleAbs(img))


def _scan(r: random.Random, img: Image.Image, p: float = 0.5) -> Image.Image:
    """With probability `p`, what a scanner or copier does to the page: one of resolution loss, JPEG,
    a bitonal (thresholded) scan, a dark photocopy (contrast up, toner specks), or a soft grey scan."""
    if r.random() >= p:
        return img
    kind = r.choice(["lowres", "jpeg", "bitonal", "copy", "grey"])
    a = np.asarray(img)
    h, w = a.shape[:2]
    if kind == "lowres":
        s = r.uniform(0.35, 0.7)
        a = cv2.resize(cv2.resize(a, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA), (w, h),
                       interpolation=r.choice([cv2.INTER_LINEAR, cv2.INTER_NEAREST]))
    elif kind == "jpeg":
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=r.randint(15, 60))
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    elif kind == "bitonal":
        g = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
        g = cv2.GaussianBlur(g, (0, 0), r.uniform(0.3, 1.0))
        t = float(np.median(g)) * r.uniform(0.65, 0.85)  # the scanner's fixed threshold below the paper
        a = cv2.cvtColor(np.where(g > t, 255, 0).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    elif kind == "copy":
        g = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32)
        g = np.clip((g - r.uniform(40, 90)) * r.uniform(1.3, 1.8), 0, 255)
        rng = np.random.default_rng(r.randrange(1 << 30))
        g[rng.random(g.shape) < r.uniform(0, 4e-4)] = 0
        a = cv2.cvtColor(cv2.GaussianBlur(g, (0, 0), r.uniform(0.4, 1.2)).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    else:
        g = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32)
        lo, hi = r.uniform(30, 80), r.uniform(205, 245)  # washed-out blacks, grey paper
        g = cv2.GaussianBlur(lo + g * np.float32((hi - lo) / 255), (0, 0), r.uniform(0.5, 1.3))
        a = cv2.cvtColor(np.clip(g, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    return Image.fromarray(np.ascontiguousarray(a))


def _canvas(dpi: int) -> tuple[Image.Image, ImageDraw.ImageDraw, int, int]:
    w, h = round(8.27 * dpi), round(11.69 * dpi)
    mask = Image.new("L", (w, h), 0)
    return mask, ImageDraw.Draw(mask), w, h


def _signature(r, mask, x, y, px, test):
    """A scribbled signature in a script font (typed letters are often signed)."""
    f = _font(r.choice(_pool(hand_fonts(), test)), px * 1.8)
    ImageDraw.Draw(mask).text((x, y), f"{r.choice(VOCAB).capitalize()} {r.choice(VOCAB).capitalize()}", fill=200, font=f)

