"""Seeded generator of labelled pages for tuning and testing the page router (pipeline/classify.py).

`generate(kind, seed, dpi)` draws one page (PIL RGB image, A4 at `dpi`); `labelled_set(n, seed)` gives
(image, route) pairs for every kind. Kinds and their routes (KINDS): typed letters (monospace
"typewriter" type, per-character jitter and ink, aged paper, skew, signature) -> horizontal; business
forms (labels, boxes, filled values) -> table; handwriting (script fonts from PyPI's fontpkg-*
packages, per-word jitter, wobbling baselines, pen width, lined or plain paper, blue/black/pencil)
-> handwriting; photos of pages (perspective, lighting, background, blur, JPEG) -> photo; plain text
pages, tables, vertical Chinese (pymupdf's CJK font; some from pipeline.bench.synthetic_page) and
blank pages. Seeds >= TEST_SEED0 are the held-out part, which also draws on fonts (HELDOUT_FONTS) that
tuning seeds never use. `python -m pipeline.page_gen --report` prints router accuracy and confusion on
the tuning and held-out parts (real labelled pages split by `real_split`, plus generated pages).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import io
import random
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from pipeline.bench import _HANZI, degrade, synthetic_page

KINDS = {"typed_letter": "horizontal", "form": "table", "handwriting": "handwriting", "photo_of_page": "photo",
         "horizontal": "horizontal", "table": "table", "vertical": "vertical", "blank": "blank"}
ALSO_OK = {"form": {"horizontal"}}  # a form read as plain text still goes to PaddleOCR
TEST_SEED0 = 1_000_000  # seeds from here on: held-out part
HAND_PACKAGES = ("fontpkg_caveat", "fontpkg_dancing_script", "fontpkg_indie_flower", "fontpkg_kalam",
                 "fontpkg_shadows_into_light", "fontpkg_zeyada", "fontpkg_satisfy")
HELDOUT_FONTS = ("Zeyada", "Satisfy", "IBMPlexMono", "DejaVuSansMono-Oblique")  # never in tuning pages
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
    out = ["cour", "cour", str(DEJAVU / "DejaVuSansMono.ttf"), str(DEJAVU / "DejaVuSansMono-Oblique.ttf")]
    spec = importlib.util.find_spec("fontpkg_ibm_plex_mono")
    if spec and spec.origin:
        out += [str(p) for p in (Path(spec.origin).parent / "files").glob("*Regular*.ttf")]
    return [f for f in out if "/" not in f or Path(f).exists()]


TEXT_FONTS = ["tiro", "helv", str(DEJAVU / "DejaVuSerif.ttf"), str(DEJAVU / "DejaVuSans.ttf")]


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
             noise=0.0) -> Image.Image:
    """Ink layer (L, 255 = full ink) over paper; optional skew, blur and sensor noise."""
    if skew:
        mask = mask.rotate(skew, resample=Image.Resampling.BILINEAR, fillcolor=0)
    a = np.asarray(mask, np.float32) * np.float32(1 / 255)
    if blur:
        a = cv2.GaussianBlur(a, (0, 0), blur)
    if noise:
        paper = paper + cv2.merge([np.random.default_rng(r.randrange(1 << 30)).standard_normal(a.shape, np.float32) * np.float32(noise)] * 3)
    img = paper + (np.asarray(ink, np.float32) - paper) * a[..., None]
    return Image.fromarray(cv2.convertScaleAbs(img))


def _canvas(dpi: int) -> tuple[Image.Image, ImageDraw.ImageDraw, int, int]:
    w, h = round(8.27 * dpi), round(11.69 * dpi)
    mask = Image.new("L", (w, h), 0)
    return mask, ImageDraw.Draw(mask), w, h


def _signature(r, mask, x, y, px, test):
    """A scribbled signature in a script font (typed letters are often signed)."""
    f = _font(r.choice(_pool(hand_fonts(), test)), px * 1.8)
    ImageDraw.Draw(mask).text((x, y), f"{r.choice(VOCAB).capitalize()} {r.choice(VOCAB).capitalize()}", fill=200, font=f)


def typed_letter(r: random.Random, dpi: int, test: bool) -> Image.Image:
    mask, d, w, h = _canvas(dpi)
    px = dpi * r.uniform(10, 12.5) / 72
    font = _font(r.choice(_pool(mono_fonts(), test)), px)
    adv, pitch = font.getlength("M"), px * r.choice([1.2, 1.3, 1.5, 2.0])
    left, y = int(w * r.uniform(0.09, 0.16)), int(h * r.uniform(0.05, 0.1))
    cols = int((w - 2 * left) / adv)
    if r.random() < 0.6:  # letterhead
        head = _font(r.choice(["tibo", "hebo", "tiro"]), px * r.uniform(1.6, 2.4))
        name = " ".join(r.choice(VOCAB).upper() for _ in range(r.randint(2, 4)))
        d.text(((w - head.getlength(name)) / 2, y), name, fill=235, font=head)
        y += int(px * 3)
        if r.random() < 0.5:
            d.line([(left, y), (w - left, y)], fill=200, width=max(1, dpi // 90))
        y += int(px * 1.5)
    lines: list[tuple[int, str]] = []  # (indent in characters, text)
    right = cols - 26
    for _ in range(r.randint(0, 3)):  # sender address, right
        lines.append((right, f"{r.randint(1, 99)} {r.choice(VOCAB).capitalize()} Street"[:26]))
    lines += [(right if r.random() < 0.6 else 0, f"{r.randint(1, 28)} {r.choice(['May', 'June', 'March', 'October'])} 19{r.randint(10, 69)}"), (0, "")]
    for _ in range(r.randint(2, 4)):  # recipient
        lines.append((0, " ".join(r.choice(VOCAB).capitalize() for _ in range(r.randint(1, 3)))))
    lines += [(0, ""), (0, f"Dear {r.choice(['Sir', 'Madam', 'Mr. ' + r.choice(VOCAB).capitalize()])},"), (0, "")]
    if r.random() < 0.4:
        lines += [(8, f"Re: {' '.join(r.choice(VOCAB) for _ in range(4))}"), (0, "")]
    indent = r.choice([0, 5, 8])
    for _ in range(r.randint(2, 6)):
        para = " ".join(_sentence(r) for _ in range(r.randint(2, 6)))
        wrapped, cur = [], " " * indent
        for word in para.split():
            if len(cur) + len(word) + 1 > cols:
                wrapped.append(cur)
                cur = word
            else:
                cur = f"{cur} {word}" if cur.strip() else cur + word
        lines += [(0, s) for s in wrapped + [cur]] + [(0, "")]
    lines += [(right, r.choice(["Yours faithfully,", "Yours truly,", "Sincerely yours,"]))]
    ink_base = r.uniform(150, 255)
    for indent, text in lines:
        if y > h - 5 * pitch:
            break
        for i, ch in enumerate(text):
            if ch != " ":  # typewriter: each key strikes a little off and with its own force
                d.text((left + (indent + i) * adv + r.gauss(0, 0.4), y + r.gauss(0, px * 0.03)), ch,
                       fill=int(ink_base * r.uniform(0.55, 1.0)), font=font)
        y += pitch
    if r.random() < 0.7:
        _signature(r, mask, left + right * adv, y + pitch * 0.3, px, test)
    aged = r.choice([0.0, 0.3, 0.6, 0.9, 1.0])
    ink = r.choice([(25, 25, 30), (60, 45, 40), (40, 40, 90)])
    return _compose(r, mask, _paper(r, w, h, aged), ink, skew=r.uniform(-1.5, 1.5), blur=r.uniform(0, 1.2), noise=r.uniform(0, 8))


def form(r: random.Random, dpi: int, test: bool) -> Image.Image:
    mask, d, w, h = _canvas(dpi)
    px = dpi * r.uniform(9, 11) / 72
    font, vfont = _font(r.choice(TEXT_FONTS), px), _font(r.choice(_pool(mono_fonts(), test)), px)
    lw, left = max(1, dpi // r.choice([60, 90, 120])), int(w * 0.08)
    y = int(h * 0.06)
    title = " ".join(r.choice(VOCAB).upper() for _ in range(r.randint(2, 4))) + " FORM"
    tf = _font("hebo", px * 1.8)
    d.text(((w - tf.getlength(title)) / 2, y), title, fill=255, font=tf)
    y += int(px * 4)
    boxed = r.random() < 0.6
    while y < h * r.uniform(0.7, 0.92):
        ncol = r.choice([1, 2, 2, 3, 4])
        cw, rh = (w - 2 * left) / ncol, int(px * r.uniform(2.4, 3.4))
        for c in range(ncol):
            x0 = left + c * cw
            label = " ".join(r.choice(VOCAB).capitalize() for _ in range(r.randint(1, 2))) + ":"
            if boxed:
                d.rectangle([x0, y, x0 + cw, y + rh], outline=255, width=lw)
                d.text((x0 + 6, y + 4), label, fill=255, font=_font(r.choice(TEXT_FONTS), px * 0.8))
                vy = y + rh * 0.45
            else:
                d.text((x0, y + rh * 0.3), label, fill=255, font=font)
                vy = y + rh * 0.3
                d.line([(x0 + font.getlength(label) + 8, y + rh * 0.3 + px * 1.1), (x0 + cw - 20, y + rh * 0.3 + px * 1.1)], fill=255, width=lw)
            if r.random() < 0.8:  # a filled value
                val = " ".join(r.choice(VOCAB) for _ in range(r.randint(1, 3))) if r.random() < 0.6 else str(r.randint(1, 99999))
                d.text((x0 + (10 if boxed else font.getlength(label) + 14), vy), val, fill=255, font=vfont)
        y += rh + (0 if boxed else int(px * 0.8))
        if r.random() < 0.15:  # checkboxes
            for c in range(r.randint(2, 5)):
                x0 = left + c * (w - 2 * left) / 5
                d.rectangle([x0, y + 8, x0 + px, y + 8 + px], outline=255, width=lw)
                d.text((x0 + px * 1.6, y + 6), r.choice(VOCAB), fill=255, font=font)
                if r.random() < 0.4:
                    d.line([(x0, y + 8), (x0 + px, y + 8 + px)], fill=255, width=lw + 1)
            y += int(px * 2.5)
    aged = r.choice([0.0, 0.0, 0.4, 0.8])
    return _compose(r, mask, _paper(r, w, h, aged), skew=r.uniform(-1, 1), blur=r.uniform(0, 1), noise=r.uniform(0, 6))


def handwriting(r: random.Random, dpi: int, test: bool) -> Image.Image:
    mask, d, w, h = _canvas(dpi)
    fonts = _pool(hand_fonts(), test)
    px = dpi * r.uniform(13, 22) / 72
    font = _font(r.choice(fonts), px)
    pitch = px * r.uniform(1.5, 2.3)
    paper = _paper(r, w, h, r.choice([0.0, 0.0, 0.2, 0.5, 0.9]))
    y0 = h * r.uniform(0.05, 0.12)
    if r.random() < 0.45:  # lined paper, perhaps with a red margin
        lines = Image.new("L", (w, h), 0)
        ld = ImageDraw.Draw(lines)
        for k in range(int((h - y0) / pitch) + 1):
            ld.line([(0, y0 + k * pitch + px * 0.9), (w, y0 + k * pitch + px * 0.9)], fill=110, width=max(1, dpi // 120))
        a = np.asarray(lines, np.float32)[..., None] / 255
        paper = paper * (1 - a) + np.array([120, 150, 220], np.float32) * a
        if r.random() < 0.5:
            paper[:, int(w * 0.12) : int(w * 0.12) + max(1, dpi // 100)] = [225, 110, 110]
    left, y, slope = w * r.uniform(0.08, 0.15), y0, r.uniform(-0.02, 0.02)
    amp, period, slant = px * r.uniform(0, 0.25), w * r.uniform(0.3, 1.0), r.uniform(-0.35, 0.1)
    width = max(0, r.choice([0, 0, 1, 1, 2]) - (px < 40))
    n_lines = r.randint(5, int((h * 0.9 - y0) / pitch))
    for li in range(n_lines):
        x, right = left + r.gauss(0, px * 0.3), w * r.uniform(0.8, 0.93)
        if li and r.random() < 0.12:  # new paragraph or short line
            y += pitch
            continue
        for word in " ".join(_sentence(r) for _ in range(3)).split():
            wf = font
            size = wf.getbbox(word)
            wi = Image.new("L", (size[2] + 8, int(px * 2)), 0)
            ImageDraw.Draw(wi).text((4, px * 0.3), word, fill=int(255 * r.uniform(0.75, 1)), font=wf, stroke_width=width)
            wi = wi.transform(wi.size, Image.Transform.AFFINE, (1, slant, -slant * px, 0, 1, 0), Image.Resampling.BILINEAR)
            wi = wi.rotate(r.gauss(0, 2), resample=Image.Resampling.BILINEAR, expand=True)
            yy = y + slope * (x - left) + amp * np.sin(2 * np.pi * x / period) + r.gauss(0, px * 0.06)
            if x + wi.size[0] > right:
                break
            mask.paste(wi, (int(x), int(yy)), wi)
            x += wi.size[0] + font.getlength(" ") * r.uniform(0.6, 1.5)
        y += pitch + r.gauss(0, pitch * 0.04 if amp else 0)
        if y > h * 0.92:
            break
    ink = r.choice([(20, 30, 110), (20, 20, 30), (60, 60, 70), (15, 40, 140)])  # blue, black, pencil grey
    strength = 0.45 if ink == (60, 60, 70) else 1.0
    mask = mask.point(lambda v: int(v * strength))
    return _compose(r, mask, paper, ink, skew=r.uniform(-2, 2), blur=r.uniform(0, 1.0), noise=r.uniform(0, 6))


def horizontal(r: random.Random, dpi: int, test: bool) -> Image.Image:
    if r.random() < 0.25:  # the bench's page, sometimes as a poor scan
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(synthetic_page(r.randrange(10000), Path(tmp), dpi))
            if r.random() < 0.5:
                degrade(path, r.randrange(10000))
            return Image.open(path).convert("RGB")
    mask, d, w, h = _canvas(dpi)
    cjk = r.random() < 0.2
    px = dpi * r.uniform(9, 13) / 72
    font = _font("china-t" if cjk else r.choice(TEXT_FONTS), px)
    ncol, left, y = r.choice([1, 1, 1, 2]), int(w * r.uniform(0.08, 0.13)), int(h * 0.07)
    d.text((left, y), "".join(r.choice(_HANZI) for _ in range(12)) if cjk else _sentence(r)[:40], fill=255,
           font=_font("china-t" if cjk else "hebo", px * 1.6))
    gap, top = px * 2, y + int(px * 3.5)
    colw = (w - 2 * left - gap * (ncol - 1)) / ncol
    for c in range(ncol):
        y = top
        while y < h * 0.9:
            text = "".join(r.choice(_HANZI + "，。") for _ in range(r.randint(60, 300))) if cjk else " ".join(_sentence(r) for _ in range(r.randint(2, 7)))
            lines = [text[i : i + int(colw / px)] for i in range(0, len(text), int(colw / px))] if cjk else _wrap(text, font, colw)
            for ln in lines:
                d.text((left + c * (colw + gap), y), ln, fill=255, font=font)
                y += px * 1.35
            y += px * r.uniform(0.4, 1.5)
    aged = r.choice([0.0, 0.0, 0.0, 0.4, 0.8])
    return _compose(r, mask, _paper(r, w, h, aged), skew=r.uniform(-0.8, 0.8) * (aged > 0), blur=r.uniform(0, 0.8), noise=r.uniform(0, 5))


def table(r: random.Random, dpi: int, test: bool) -> Image.Image:
    mask, d, w, h = _canvas(dpi)
    px = dpi * r.uniform(8, 11) / 72
    font = _font(r.choice(TEXT_FONTS), px)
    style, ncol, nrow = r.choice(["grid", "grid", "rules", "none"]), r.randint(3, 8), r.randint(8, 40)
    left, y, lw = int(w * 0.07), int(h * r.uniform(0.05, 0.2)), max(1, dpi // 90)
    d.text((left, y), "Table " + str(r.randint(1, 9)) + ". " + _sentence(r)[:60], fill=255, font=font)
    y += int(px * 2.5)
    cw, rh = (w - 2 * left) / ncol, int(px * r.uniform(1.6, 2.4))
    top = y
    for i in range(nrow):
        for c in range(ncol):
            cell = r.choice(VOCAB).capitalize() if i == 0 or c == 0 else f"{r.uniform(0, 999):.{r.randint(0, 2)}f}"
            d.text((left + c * cw + 6, y + rh * 0.2), cell[: int(cw / px * 1.6)], fill=255, font=font)
        if style == "grid" or (style == "rules" and i in (0, 1)):
            d.line([(left, y), (w - left, y)], fill=255, width=lw)
        y += rh
        if y > h * 0.93:
            break
    d.line([(left, y), (w - left, y)], fill=255 * (style != "none"), width=lw)
    if style == "grid":
        for c in range(ncol + 1):
            d.line([(left + c * cw, top), (left + c * cw, y)], fill=255, width=lw)
    img = _compose(r, mask, _paper(r, w, h, r.choice([0.0, 0.0, 0.5])), blur=r.uniform(0, 0.8), noise=r.uniform(0, 4))
    if r.random() < 0.4:  # a cropped table, like PubTabNet's
        img = img.crop((left - 20, top - int(px * 2.5) - 20, w - left + 20, y + 20))
    return img


def vertical(r: random.Random, dpi: int, test: bool) -> Image.Image:
    if r.random() < 0.25:
        with tempfile.TemporaryDirectory() as tmp:
            return Image.open(synthetic_page(r.randrange(10000), Path(tmp), dpi, vertical=True)).convert("RGB")
    mask, d, w, h = _canvas(dpi)
    px = dpi * r.uniform(12, 20) / 72
    font, lw = _font("china-t", px), max(1, dpi // 100)
    margin, step = int(w * r.uniform(0.07, 0.12)), px * r.uniform(1.4, 2.0)
    ruled = r.random() < 0.4
    if ruled:
        d.rectangle([margin - px * 0.5, margin, w - margin + px * 0.5, h - margin], outline=255, width=lw * 2)
    x = w - margin - px
    while x > margin:
        col = "\n".join(r.choice(_HANZI) for _ in range(r.randint(4, int((h - 2 * margin) / (px * 1.2)) - 1)))
        d.multiline_text((x, margin + px * 0.5), col, fill=255, font=font, spacing=int(px * 0.05))
        if ruled:
            d.line([(x - (step - px) / 2, margin), (x - (step - px) / 2, h - margin)], fill=255, width=lw)
        x -= step
    aged = r.choice([0.0, 0.5, 0.9])
    return _compose(r, mask, _paper(r, w, h, aged), ink=r.choice([(20, 20, 20), (50, 35, 30)]), blur=r.uniform(0, 1.2), noise=r.uniform(0, 8))


def blank(r: random.Random, dpi: int, test: bool) -> Image.Image:
    mask, d, w, h = _canvas(dpi)
    if r.random() < 0.4:
        d.text((w / 2, h * 0.95), str(r.randint(1, 300)), fill=255, font=_font("tiro", dpi * 10 / 72))
    strength = 0.0
    if r.random() < 0.4:  # show-through of the other side, mirrored and faint
        mask = Image.fromarray(np.maximum(np.asarray(mask), np.asarray(horizontal(r, dpi, test).convert("L").resize(mask.size).point(lambda v: 255 - v))[:, ::-1] // 14))
        strength = 1
    img = _compose(r, mask, _paper(r, w, h, r.choice([0.0, 0.3, 0.7, 1.0])), blur=r.uniform(0, 1.5), noise=r.uniform(0, 6) + strength)
    if r.random() < 0.3:  # the scanner lid's dark edge
        a = np.asarray(img).copy()
        a[:, : r.randint(5, 40)] = r.randint(30, 90)
        img = Image.fromarray(a)
    return img


def photo_of_page(r: random.Random, dpi: int, test: bool) -> Image.Image:
    """A phone photo of a page: perspective, background around it, uneven light, blur, JPEG."""
    inner = r.choice([typed_letter, horizontal, handwriting, form, table])(r, dpi // 2, test)
    pw, ph = inner.size
    w, h = round(8.27 * dpi), round(8.27 * dpi * 4 / 3)
    bg_col = np.array(r.choice([(120, 85, 55), (90, 90, 95), (160, 130, 100), (60, 60, 70), (190, 180, 170)]), np.float32)
    rng = np.random.default_rng(r.randrange(1 << 30))
    bg = bg_col * (1 + 0.15 * cv2.resize(rng.normal(0, 1, (h // 40, 4)).astype(np.float32), (w, h))[..., None])
    s = r.uniform(0.65, 0.9) * min(w / pw, h / ph)
    cx, cy = w / 2 + r.uniform(-0.05, 0.05) * w, h / 2 + r.uniform(-0.05, 0.05) * h
    dst = np.float32([[cx + sx * pw * s / 2 + r.uniform(-0.06, 0.06) * w, cy + sy * ph * s / 2 + r.uniform(-0.05, 0.05) * h]
                      for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
    m = cv2.getPerspectiveTransform(np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]]), dst)
    page = cv2.warpPerspective(np.asarray(inner), m, (w, h), flags=cv2.INTER_LINEAR)
    inside = cv2.warpPerspective(np.full((ph, pw), 1, np.float32), m, (w, h))[..., None]
    img = bg * (1 - inside) + page.astype(np.float32) * inside
    yy, xx = np.mgrid[0:h:8, 0:w:8].astype(np.float32)  # light falls off across the page (1/8 res, upscaled)
    ang, lo = r.uniform(0, 2 * np.pi), r.uniform(0.45, 0.85)
    grad = np.cos(ang) * xx / w + np.sin(ang) * yy / h
    grad = cv2.resize((grad - grad.min()) / (grad.max() - grad.min() + 1e-6), (w, h))
    tint = np.array([1.0, r.uniform(0.93, 1.0), r.uniform(0.8, 0.97)], np.float32)  # warm indoor light
    img = img * (np.float32(lo) + np.float32(1 - lo) * grad)[..., None] * tint
    img = cv2.GaussianBlur(img + rng.standard_normal(img.shape[:2] + (1,), np.float32) * np.float32(r.uniform(2, 7)), (0, 0), r.uniform(0.6, 2.2))
    buf = io.BytesIO()
    Image.fromarray(cv2.convertScaleAbs(img)).save(buf, "JPEG", quality=r.randint(35, 80))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


GENERATORS = {"typed_letter": typed_letter, "form": form, "handwriting": handwriting, "photo_of_page": photo_of_page,
              "horizontal": horizontal, "table": table, "vertical": vertical, "blank": blank}


def generate(kind: str, seed: int, dpi: int = 185) -> Image.Image:
    """Page `seed` of `kind` (a key of KINDS); seeds >= TEST_SEED0 belong to the held-out part."""
    return GENERATORS[kind](_rnd(kind, seed), dpi, seed >= TEST_SEED0)


def labelled_items(n_per_kind: int, seed: int = 0, dpi: int = 185):
    """(name, loader, route, also-acceptable routes) for n pages of every kind, seeds seed .. seed+n-1."""
    return [(f"gen/{k}/{s}", functools.partial(lambda k, s: np.asarray(generate(k, s, dpi)), k, s), KINDS[k], ALSO_OK.get(k, set()))
            for k in KINDS for s in range(seed, seed + n_per_kind)]


def labelled_set(n_per_kind: int, seed: int = 0, dpi: int = 185) -> list[tuple[Image.Image, str]]:
    return [(generate(k, s, dpi), KINDS[k]) for k in KINDS for s in range(seed, seed + n_per_kind)]


def real_split(name: str) -> str:
    """'test' for a third of the real labelled pages (by a hash of the page name), else 'tune'."""
    return "test" if zlib.crc32(name.encode()) % 3 == 0 else "tune"


def real_pages():
    """The labelled real pages of tests/test_classify.py (needs ../shared/eval), with their split."""
    path = Path(__file__).resolve().parents[1] / "tests" / "test_classify.py"
    spec = importlib.util.spec_from_file_location("_router_labels", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not mod.EVAL.is_dir():
        return []
    return [(real_split(n), n, load, label, also) for n, load, label, also in mod.labelled_pages(full=True)]


def route_all(items) -> list[tuple[str, str, set, str, float]]:
    """Route every (name, loader, label, also) item: (name, label, also, route, seconds in the classifier)."""
    import time

    from pipeline.classify import classify_page

    out = []
    for name, load, label, also in items:
        img = load()
        t = time.perf_counter()
        route = classify_page(img).route
        out.append((name, label, also, route, time.perf_counter() - t))
    return out


def summarise(routed) -> dict:
    """Lenient accuracy (a route in `also` counts), per class hits/pages, confusion (label x route), misses."""
    conf, per, misses = {}, {}, []
    for name, label, also, route, _ in routed:
        conf.setdefault(label, {}).setdefault(route, 0)
        conf[label][route] += 1
        ok = route == label or route in also
        per.setdefault(label, [0, 0])
        per[label] = [per[label][0] + ok, per[label][1] + 1]
        misses += [] if ok else [f"{name}: {label} -> {route}"]
    n = len(routed)
    return {"pages": n, "accuracy": sum(a for a, _ in per.values()) / max(n, 1), "per_class": per, "confusion": conf,
            "misses": misses, "ms_per_page": 1000 * sum(r[4] for r in routed) / max(n, 1)}


def print_summary(title: str, res: dict) -> None:
    from pipeline.types import ROUTES

    print(f"\n== {title}: {res['accuracy']:.1%} of {res['pages']} pages, classifier {res['ms_per_page']:.0f} ms/page")
    print("per class: " + ", ".join(f"{k} {a}/{b}" for k, (a, b) in sorted(res["per_class"].items())))
    print("expected \\ routed" + " " * 2 + "".join(f"{r[:11]:>12}" for r in ROUTES))
    for label in ROUTES:
        if label in res["confusion"]:
            print(f"{label:<18}" + "".join(f"{res['confusion'][label].get(r, 0):>12}" for r in ROUTES))
    for m in res["misses"]:
        print("  miss", m)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Router accuracy on the tuning and held-out parts (no Ray needed).")
    ap.add_argument("--report", action="store_true", help="print accuracy, per class and confusion for both parts")
    ap.add_argument("--n-tune", type=int, default=20, help="generated tuning pages per kind")
    ap.add_argument("--n-test", type=int, default=10, help="generated held-out pages per kind")
    ap.add_argument("--save", help="only write held-out generated pages as PNGs to this folder")
    args = ap.parse_args(argv)
    if args.save:
        Path(args.save).mkdir(parents=True, exist_ok=True)
        for k in KINDS:
            for s in range(TEST_SEED0, TEST_SEED0 + args.n_test):
                generate(k, s).save(Path(args.save) / f"{k}_{s}.png")
        return 0
    real = real_pages()
    for part, n, s0 in (("tuning", args.n_tune, 0), ("held-out", args.n_test, TEST_SEED0)):
        r = route_all([it[1:] for it in real if it[0] == ("tune" if part == "tuning" else "test")])
        g = route_all(labelled_items(n, s0))
        for title, rows in (("real pages", r), ("generated pages", g), ("all", r + g)):
            print_summary(f"{part} part, {title}", summarise(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
