"""The page kinds of the router's generator (pipeline/page_gen.py): one function per kind, each
`kind(r, dpi, test, v=None) -> PIL RGB page` drawn from the seeded `random.Random` r; `test` selects the
held-out font pool. `v`, a second seeded Random (None for the first held-out part, whose pages stay as they
were measured), draws the later variations: proportional office type and long right-hand address blocks in
letters, neat or letter-by-letter hands and pen widths, letterhead blocks on text pages, short borderless
tables. GENERATORS maps the kind names of page_gen.KINDS to them.
"""

from __future__ import annotations

import io
import random
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from pipeline.bench import _HANZI, degrade, synthetic_page
from pipeline.page_gen_base import (VOCAB, _canvas, _compose, _font, _paper, _pool, _scan, _sentence, _signature, _wrap,
                                    hand_fonts, mono_fonts, text_fonts)


def typed_letter(r: random.Random, dpi: int, test: bool, v: random.Random | None = None) -> Image.Image:
    mask, d, w, h = _canvas(dpi)
    px = dpi * r.uniform(9, 13) / 72
    font = _font(r.choice(_pool(mono_fonts(), test)), px)
    office = v is not None and v.random() < 0.3  # a letter typed on an office machine in a book face
    if office:
        font = _font(v.choice(_pool(text_fonts(), test)), px)
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
    for _ in range(r.randint(0, 3) + (v.randint(0, 4) if v is not None and v.random() < 0.4 else 0)):  # sender address, right
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
        if office:  # proportional type: whole lines, no key jitter
            d.text((left + indent * adv, y), text.strip(), fill=int(ink_base * r.uniform(0.8, 1.0)), font=font)
            y += pitch
            continue
        for i, ch in enumerate(text):
            if ch != " ":  # typewriter: each key strikes a little off and with its own force
                d.text((left + (indent + i) * adv + r.gauss(0, 0.4), y + r.gauss(0, px * 0.03)), ch,
                       fill=int(ink_base * r.uniform(0.55, 1.0)), font=font)
        y += pitch
    if r.random() < 0.7:
        _signature(r, mask, left + right * adv, y + pitch * 0.3, px, test)
    aged = r.choice([0.0, 0.3, 0.6, 0.9, 1.0])
    ink = r.choice([(25, 25, 30), (60, 45, 40), (40, 40, 90), (80, 50, 120), (90, 90, 95)])  # black, brown, blue, carbon, faded
    if v is not None and v.random() < 0.25:  # a worn ribbon: thin, broken strokes
        mask = _pen(v, mask, -1)
    img = _compose(r, mask, _paper(r, w, h, aged), ink, skew=r.uniform(-1.5, 1.5), blur=r.uniform(0, 1.6),
                   noise=r.uniform(0, 8), fade=r.choice([0.0, 0.0, 0.3, 0.5]))
    return _scan(r, img, 0.4)


def form(r: random.Random, dpi: int, test: bool, v: random.Random | None = None) -> Image.Image:
    mask, d, w, h = _canvas(dpi)
    px = dpi * r.uniform(9, 11) / 72
    faces = _pool(text_fonts(), test)
    font, vfont = _font(r.choice(faces), px), _font(r.choice(_pool(mono_fonts(), test)), px)
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
                d.text((x0 + 6, y + 4), label, fill=255, font=_font(r.choice(faces), px * 0.8))
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
    return _scan(r, _compose(r, mask, _paper(r, w, h, aged), skew=r.uniform(-1, 1), blur=r.uniform(0, 1), noise=r.uniform(0, 6)), 0.3)


def _wobble(r: random.Random, mask: Image.Image, px: float) -> Image.Image:
    """Elastic warp of the ink (smooth random displacements, cells under a letter wide, so each letter
    comes out a little different): an unsteady hand."""
    amp = px * r.uniform(0.03, 0.07)
    if amp < 0.5:
        return mask
    w, h = mask.size
    cell = max(4, int(px * r.uniform(0.35, 0.8)))
    rng = np.random.default_rng(r.randrange(1 << 30))
    gx, gy = (cv2.resize(rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32), (w, h)) * np.float32(amp)
              for _ in range(2))
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return Image.fromarray(cv2.remap(np.asarray(mask), xx + gx, yy + gy, cv2.INTER_LINEAR))


def _ruled_paper(r: random.Random, paper: np.ndarray, y0: float, pitch: float, px: float, dpi: int) -> np.ndarray:
    """Lined (perhaps with a red margin) or squared notebook paper under the writing."""
    h, w = paper.shape[:2]
    lines = Image.new("L", (w, h), 0)
    ld = ImageDraw.Draw(lines)
    lw = max(1, dpi // 120)
    for k in range(int((h - y0) / pitch) + 1):
        ld.line([(0, y0 + k * pitch + px * 0.9), (w, y0 + k * pitch + px * 0.9)], fill=110, width=lw)
    if r.random() < 0.3:  # squared paper
        step = pitch / r.choice([1, 2])
        for k in range(int(w / step) + 1):
            ld.line([(k * step, 0), (k * step, h)], fill=80, width=lw)
    a = np.asarray(lines, np.float32)[..., None] / 255
    paper = paper * (1 - a) + np.array(r.choice([(120, 150, 220), (150, 150, 150), (130, 180, 200)]), np.float32) * a
    if r.random() < 0.4:
        paper[:, int(w * 0.12) : int(w * 0.12) + max(1, dpi // 100)] = [225, 110, 110]
    return paper


def _pen(v: random.Random, mask: Image.Image, sign: int) -> Image.Image:
    """A broader pen (sign 1: the strokes dilated) or a thin, dry one (-1: eroded, some pixels lost)."""
    a = np.asarray(mask)
    k = np.ones((2, 2) if v.random() < 0.7 else (3, 3), np.uint8)
    if sign > 0:
        return Image.fromarray(cv2.dilate(a, k))
    thin = cv2.erode(a, np.ones((2, 1) if v.random() < 0.5 else (1, 2), np.uint8))
    keep = np.random.default_rng(v.randrange(1 << 30)).random(a.shape) > v.uniform(0, 0.25)
    return Image.fromarray(np.where(keep, np.maximum(thin, a // 3), thin).astype(np.uint8))


def _letters(r: random.Random, word: str, name: str, wpx: float, fill: int, width: int, jitter: float) -> Image.Image:
    """A word drawn letter by letter, each with its own size, baseline and advance: no two letters alike."""
    f = _font(name, wpx)
    wi = Image.new("L", (int(f.getlength(word) * (1 + jitter) + wpx), int(wpx * 2.2)), 0)
    dw, x = ImageDraw.Draw(wi), 4.0
    for ch in word:
        lf = _font(name, wpx * (1 + r.uniform(-jitter, jitter)))
        dw.text((x, wpx * (0.3 + r.gauss(0, jitter * 0.5))), ch, fill=fill, font=lf, stroke_width=width)
        x += lf.getlength(ch) * (1 + r.uniform(-jitter, jitter) * 0.5)
    box = wi.getbbox()
    return wi.crop((0, 0, min(wi.size[0], box[2] + 4), wi.size[1])) if box else wi


def handwriting(r: random.Random, dpi: int, test: bool, v: random.Random | None = None) -> Image.Image:
    mask, d, w, h = _canvas(dpi)
    name = r.choice(_pool(hand_fonts(), test))
    px = dpi * r.uniform(10, 24) / 72
    font = _font(name, px)
    pitch = px * r.uniform(1.4, 2.4)
    paper = _paper(r, w, h, r.choice([0.0, 0.0, 0.2, 0.5, 0.9]))
    y0 = h * r.uniform(0.05, 0.12)
    if r.random() < 0.5:
        paper = _ruled_paper(r, paper, y0, pitch, px, dpi)
    left, y, slope = w * r.uniform(0.08, 0.15), y0, r.uniform(-0.02, 0.02)
    amp, period, slant = px * r.uniform(0, 0.25), w * r.uniform(0.3, 1.0), r.uniform(-0.35, 0.1)
    size_jitter, slant_jitter = r.choice([0.03, 0.06, 0.1, 0.18]), r.choice([0.02, 0.05, 0.12])  # a hand never repeats exactly
    width = max(0, r.choice([0, 0, 1, 1, 2]) - (px < 40))
    style = v.choice(["word", "word", "neat", "letters", "letters"]) if v is not None else "word"
    if style == "neat":  # a careful, regular hand: little size, slant or baseline change
        size_jitter, slant_jitter, amp = 0.02, 0.01, 0.0
    n_lines = r.randint(5, max(5, int((h * 0.9 - y0) / pitch)))
    for li in range(n_lines):
        x, right = left + r.gauss(0, px * 0.3), w * r.uniform(0.75, 0.93)
        if li and r.random() < 0.12:  # new paragraph or short line
            y += pitch
            continue
        for word in " ".join(_sentence(r) for _ in range(3)).split():
            wpx = px * (1 + r.uniform(-size_jitter, size_jitter))  # letters grow and shrink along the line
            wf = _font(name, wpx)
            if style == "letters":
                wi = _letters(v, word, name, wpx, int(255 * r.uniform(0.75, 1)), width, v.uniform(0.04, 0.12))
            else:
                size = wf.getbbox(word)
                wi = Image.new("L", (size[2] + 8, int(wpx * 2)), 0)
                ImageDraw.Draw(wi).text((4, wpx * 0.3), word, fill=int(255 * r.uniform(0.75, 1)), font=wf, stroke_width=width)
            sl = slant + r.gauss(0, slant_jitter)
            wi = wi.transform(wi.size, Image.Transform.AFFINE, (1, sl, -sl * wpx, 0, 1, 0), Image.Resampling.BILINEAR)
            wi = wi.rotate(r.gauss(0, 2), resample=Image.Resampling.BILINEAR, expand=True)
            yy = y + slope * (x - left) + amp * np.sin(2 * np.pi * x / period) + r.gauss(0, px * 0.06) + (px - wpx) * 0.6
            if x + wi.size[0] > right:
                break
            mask.paste(wi, (int(x), int(yy)), wi)
            x += wi.size[0] + font.getlength(" ") * r.uniform(0.6, 1.5)
        y += pitch + r.gauss(0, pitch * 0.04 if amp else 0)
        if y > h * 0.92:
            break
    mask = _wobble(r, mask, px)
    if v is not None and v.random() < 0.3:  # a felt tip or a dry ballpoint
        mask = _pen(v, mask, v.choice([1, -1]))
    ink = r.choice([(20, 30, 110), (20, 20, 30), (60, 60, 70), (15, 40, 140), (90, 90, 100)])  # blue, black, pencils
    if ink[0] >= 60:  # pencil: faint, and the graphite leaves a grainy stroke
        grain = np.random.default_rng(r.randrange(1 << 30)).uniform(0.6, 1.0, (h, w)).astype(np.float32)
        mask = Image.fromarray((np.asarray(mask, np.float32) * grain * np.float32(r.uniform(0.5, 0.9))).astype(np.uint8))
    img = _compose(r, mask, paper, ink, skew=r.uniform(-2, 2), blur=r.uniform(0, 1.2), noise=r.uniform(0, 6),
                   fade=r.choice([0.0, 0.0, 0.3, 0.5]))
    return _scan(r, img, 0.3 * (ink[0] < 60))  # pencil stays unscanned: it would vanish


def horizontal(r: random.Random, dpi: int, test: bool, v: random.Random | None = None) -> Image.Image:
    if r.random() < 0.25:  # the bench's page, sometimes as a poor scan
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(synthetic_page(r.randrange(10000), Path(tmp), dpi))
            if r.random() < 0.5:
                degrade(path, r.randrange(10000))
            return Image.open(path).convert("RGB")
    mask, d, w, h = _canvas(dpi)
    cjk = r.random() < 0.2
    px = dpi * r.uniform(8, 14) / 72
    font = _font("china-t" if cjk else r.choice(_pool(text_fonts(), test)), px)
    ncol, left, y = r.choice([1, 1, 1, 2]), int(w * r.uniform(0.08, 0.13)), int(h * 0.07)
    d.text((left, y), "".join(r.choice(_HANZI) for _ in range(12)) if cjk else _sentence(r)[:40], fill=255,
           font=_font("china-t" if cjk else "hebo", px * 1.6))
    gap, top = px * 2, y + int(px * 3.5)
    if v is not None and not cjk and v.random() < 0.3:  # a letterhead: a block of short lines on the right
        bf = _font(r.choice(_pool(text_fonts(), test)), px * 0.9)
        for _ in range(v.randint(2, 6)):
            ln = " ".join(v.choice(VOCAB).capitalize() for _ in range(v.randint(1, 3)))
            d.text((w - left - bf.getlength(ln), top), ln, fill=255, font=bf)
            top += int(px * 1.3)
        top += int(px * 1.5)
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
    img = _compose(r, mask, _paper(r, w, h, aged), skew=r.uniform(-0.8, 0.8) * (aged > 0), blur=r.uniform(0, 1.2),
                   noise=r.uniform(0, 6), fade=r.choice([0.0, 0.0, 0.0, 0.4]))
    return _scan(r, img, 0.4)


def table(r: random.Random, dpi: int, test: bool, v: random.Random | None = None) -> Image.Image:
    mask, d, w, h = _canvas(dpi)
    px = dpi * r.uniform(8, 11) / 72
    font = _font(r.choice(_pool(text_fonts(), test)), px)
    style, ncol, nrow = r.choice(["grid", "grid", "rules", "none"]), r.randint(3, 8), r.randint(8, 40)
    if v is not None and v.random() < 0.3:  # a short borderless table of few columns
        style, ncol, nrow = v.choice(["none", "rules"]), v.randint(2, 4), v.randint(5, 12)
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
    img = _scan(r, _compose(r, mask, _paper(r, w, h, r.choice([0.0, 0.0, 0.5])), blur=r.uniform(0, 0.8), noise=r.uniform(0, 4)), 0.3)
    if r.random() < 0.4:  # a cropped table, like PubTabNet's
        img = img.crop((left - 20, top - int(px * 2.5) - 20, w - left + 20, y + 20))
    return img


def vertical(r: random.Random, dpi: int, test: bool, v: random.Random | None = None) -> Image.Image:
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
    img = _compose(r, mask, _paper(r, w, h, aged), ink=r.choice([(20, 20, 20), (50, 35, 30)]), blur=r.uniform(0, 1.2), noise=r.uniform(0, 8))
    return _scan(r, img, 0.3)


def blank(r: random.Random, dpi: int, test: bool, v: random.Random | None = None) -> Image.Image:
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


def photo_of_page(r: random.Random, dpi: int, test: bool, v: random.Random | None = None) -> Image.Image:
    """A phone photo of a page: perspective, background around it, uneven light, blur, JPEG."""
    inner = r.choice([typed_letter, horizontal, handwriting, form, table])(r, dpi // 2, test, v)
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

