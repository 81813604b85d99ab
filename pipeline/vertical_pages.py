"""Seeded generator of hard vertical classical Chinese pages (竖排古籍) with reading-order truth.

`page(seed, kind)` draws one page (PIL RGB image at 185 DPI, about 8.1 x 11.4 in) and returns it with
its truth: one line per column, columns right to left, each column top to bottom. `main()` writes
N pages laid out like an eval set (`<id>.png` + `<id>.txt` + MANIFEST.json), so that
`hybridocr eval DIR --mode paddle` scores them (a folder not in evaluate.SET_CLASSES gets the folder
name as its class and route "mixed").

Kinds (KINDS; page i has kind KINDS[i % len(KINDS)]):
- punct: modern vertical punctuation. Drawn either as Unicode vertical presentation forms
  (︐︑︒︓︔︕︖﹁﹂﹃﹄) or as the horizontal glyph turned 90 degrees (brackets) / set in the upper
  right of its cell (，。、); the truth has the ordinary full-width marks (，。、「」『』), which
  metrics.cer's NFKC folding equates with the presentation forms.
- notes: double-line small notes (雙行小注 / 夾注) inside a column: a run of small characters (about
  half size, four to a main character's cell) set in two half-columns. Truth order is the traditional one: the right half-column top to bottom,
  then the left half-column, then the main text of the column continues - all on the column's line.
- seal: red seals (朱文 red characters, or 白文 white characters on red) stamped over the text;
  seal text is not part of the truth (transcriptions leave seals out).
- uneven: paragraphs end mid-column and new ones start at the top of the next, some columns
  indented (低格), a centre fold (版心) with 魚尾 marks splitting the leaf in two halves
  (the right half is read first).
- degraded: yellowed paper, stains and foxing, uneven faded ink, blur, noise, slight rotation;
  every fourth such page of a set (seed // 6 % 4 == 3) is instead the grey poor scan of
  pipeline.bench.degrade.
- mixed: all of the above on one page.
All pages have a frame (版框, single or double rule); all but `uneven` have column rules (界欄).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import tempfile
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from pipeline.bench import _HANZI, degrade

DPI = 185
SIZE = (1500, 2100)  # px at 185 DPI
KINDS = ("punct", "notes", "seal", "uneven", "degraded", "mixed")
_TEXT = _HANZI + (
    "海鹹河淡鱗潛羽翔龍師火帝鳥官人皇始制文字乃服衣裳推位讓國有虞陶唐弔民伐罪周發殷湯坐朝問道垂拱平章"
    "愛育黎首臣伏戎羌遐邇一體率賓歸王鳴鳳在竹白駒食場化被草木賴及萬方蓋此身髮四大五常恭惟鞠養豈敢毀傷"
    "女慕貞絜男效才良知過必改得能莫忘罔談彼短靡恃己長信使可覆器欲難量墨悲絲染詩讚羔羊景行維賢克念作聖"
    "德建名立形端表正空谷傳聲虛堂習聽禍因惡積福緣善慶尺璧非寶寸陰是競資父事君曰嚴與敬孝當竭力忠則盡命"
    "子曰學而時習之不亦說乎有朋自遠方來不亦樂乎人不知而不慍不亦君子乎有子曰其為人也孝弟而好犯上者鮮矣"
    "不好犯上而好作亂者未之有也君子務本本立而道生孝弟也者其為仁之本與曾子曰吾日三省吾身為人謀而不忠乎")
VERTICAL_FORMS = {"，": "︐", "、": "︑", "。": "︒", "：": "︓", "；": "︔", "！": "︕", "？": "︖",
                  "「": "﹁", "」": "﹂", "『": "﹃", "』": "﹄"}
_SEALS = ("某氏藏書", "天祿琳琅", "古香齋印", "御覽之寶", "讀書堂記", "萬卷樓藏")


@lru_cache(maxsize=64)
def _font(px: int) -> ImageFont.FreeTypeFont:
    import pymupdf  # its built-in CJK font (Droid Sans Fallback), no system font needed

    return ImageFont.truetype(io.BytesIO(bytes(pymupdf.Font("china-t").buffer)), max(6, px))


def _features(kind: str) -> dict:
    every = kind == "mixed"
    return {"punct": every or kind == "punct", "notes": every or kind == "notes", "seal": every or kind == "seal",
            "uneven": every or kind == "uneven", "fold": every or kind == "uneven", "aged": every or kind == "degraded",
            "rules": kind != "uneven"}


def _stream(rng: random.Random, f: dict):
    """Endless tokens: ("c", ch) main character, ("p", mark) punctuation, ("n", text) small note,
    ("br", "") paragraph break (uneven pages)."""
    pos = rng.randrange(len(_TEXT))

    def take(n):
        nonlocal pos
        s = "".join(_TEXT[(pos + k) % len(_TEXT)] for k in range(n))
        pos = (pos + n) % len(_TEXT)
        return s

    while True:
        for _ in range(rng.randint(3, 9) if f["uneven"] else 10 ** 6):
            quote = rng.choice("「『") if f["punct"] and rng.random() < 0.15 else ""
            if quote:
                yield "p", quote
            for ch in take(rng.randint(3, 8)):
                yield "c", ch
            if quote:
                yield "p", {"「": "」", "『": "』"}[quote]
            if f["punct"]:
                yield "p", rng.choice("，，，。。、：；？！")
            if f["notes"] and rng.random() < 0.3:
                yield "n", take(2 * rng.randint(2, 7) + rng.randint(0, 1))
        yield "br", ""


def _layout(rng: random.Random, f: dict, rows: int, n_cols: int) -> list[list[tuple]]:
    """Columns (right to left), each a list of (cell_index, kind, text) entries."""
    cols: list[list[tuple]] = [[] for _ in range(n_cols)]
    toks = _stream(rng, f)
    c, r = 0, 0
    pending = None
    while c < n_cols:
        kind, text = pending or next(toks)
        pending = None
        if kind == "br":
            if r > 0:
                c, r = c + 1, rng.choice((0, 0, 1, 2))
            continue
        if kind == "n":  # small characters half a cell high, two half-columns: 4 to a cell
            cells = _note_cells(text)
            if r + cells > rows:  # keep a note inside one column: shorten it to fit, or move it on
                if rows - r >= 1:
                    text = text[:4 * (rows - r)]
                    cells = rows - r
                else:
                    c, r, pending = c + 1, 0, (kind, text)
                    continue
        else:
            cells = 1
        if r + cells > rows:
            c, r, pending = c + 1, 0, (kind, text)
            continue
        if c < n_cols:
            cols[c].append((r, kind, text))
        r += cells
    return cols


def _note_cells(text: str) -> int:
    return ((len(text) + 1) // 2 + 1) // 2


def _truth(col: list[tuple]) -> str:
    # a note's text is stored in reading order: its first half is the right half-column
    return "".join(text for _, _, text in col)


def _punct(img: Image.Image, mark: str, cx: float, cy: float, px: int, rotated: bool, ink) -> None:
    d = ImageDraw.Draw(img)
    if not rotated:
        d.text((cx, cy), VERTICAL_FORMS.get(mark, mark), font=_font(px), fill=ink, anchor="mm")
    elif mark in "「」『』":
        cell = Image.new("L", (px * 2, px * 2), 0)
        ImageDraw.Draw(cell).text((px, px), mark, font=_font(px), fill=255, anchor="mm")
        cell = cell.rotate(-90)
        img.paste(Image.new("RGB", cell.size, ink), (int(cx - px), int(cy - px)), cell)
    else:  # ，。、 set in the upper right of the cell, upright
        d.text((cx + 0.3 * px, cy - 0.3 * px), mark, font=_font(px), fill=ink, anchor="mm")


def _seal(img: Image.Image, rng: random.Random, x: int, y: int, s: int) -> None:
    """A square red seal multiplied over the page (black ink under it stays dark)."""
    mask = Image.new("L", (s, s), 0)
    d = ImageDraw.Draw(mask)
    chars = rng.choice(_SEALS)
    white = rng.random() < 0.5  # 白文: red ground, white characters
    b = max(3, s // 18)
    if white:
        d.rectangle((0, 0, s - 1, s - 1), fill=255)
    else:
        d.rectangle((b, b, s - 1 - b, s - 1 - b), outline=255, width=b)
    fpx = int(s * 0.40)
    for k, ch in enumerate(chars):  # read right column first, like the text
        d.text((s * (0.72 - 0.44 * (k // 2)), s * (0.29 + 0.44 * (k % 2))), ch, font=_font(fpx), fill=0 if white else 255, anchor="mm")
    mask = mask.filter(ImageFilter.GaussianBlur(0.8)).rotate(rng.uniform(-4, 4), resample=Image.Resampling.BICUBIC)
    m = np.asarray(mask, np.float32)[..., None] / 255 * rng.uniform(0.75, 0.95)
    red = np.array([196, 32, 36], np.float32) / 255
    a = np.asarray(img, np.float32)
    region = a[y:y + s, x:x + s]
    m = m[:region.shape[0], :region.shape[1]]
    a[y:y + s, x:x + s] = region * (1 - m + m * red)
    img.paste(Image.fromarray(a.astype(np.uint8)))


def _age(img: Image.Image, nrng: np.random.Generator) -> Image.Image:
    """Yellowed paper, stains, foxing, faded ink, blur, noise and a slight turn."""
    w, h = img.size
    a = np.asarray(img, np.float32) / 255
    paper = np.array([0.93, 0.86, 0.70]) * nrng.uniform(0.9, 1.0)
    low = np.asarray(Image.fromarray((nrng.uniform(0, 255, (h // 60, w // 60))).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC), np.float32) / 255
    shade = 1 - 0.12 * low[..., None]
    for _ in range(nrng.integers(1, 5)):  # brown water stains
        cx, cy, rx, ry = nrng.uniform(0, w), nrng.uniform(0, h), nrng.uniform(60, 320), nrng.uniform(60, 320)
        yy, xx = np.ogrid[:h, :w]
        blob = np.clip(1 - (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2), 0, 1) ** 0.5
        shade = shade * (1 - nrng.uniform(0.08, 0.25) * blob[..., None] * np.array([0.6, 0.8, 1.0]))
    fade = 0.55 + 0.4 * (1 - low[..., None])  # ink darkness varies over the page
    ink = 1 - (1 - a) * fade
    out = ink * paper * shade
    for _ in range(nrng.integers(10, 40)):  # foxing spots
        x, y, r = int(nrng.uniform(0, w)), int(nrng.uniform(0, h)), int(nrng.uniform(2, 7))
        out[max(0, y - r):y + r, max(0, x - r):x + r] *= np.array([0.85, 0.75, 0.6])
    out = np.clip(out * 255 + nrng.normal(0, nrng.uniform(5, 12), out.shape), 0, 255).astype(np.uint8)
    im = Image.fromarray(out).filter(ImageFilter.GaussianBlur(float(nrng.uniform(0.6, 1.3))))
    return im.rotate(float(nrng.uniform(-0.8, 0.8)), fillcolor=tuple(int(v * 255) for v in paper), resample=Image.Resampling.BICUBIC)


def page(seed: int, kind: str = "mixed") -> tuple[Image.Image, list[str], dict]:
    """(image, truth lines, metadata) of one page; the same seed and kind give the same page."""
    rng = random.Random(zlib.crc32(f"vertical_pages:{kind}:{seed}".encode()))
    nrng = np.random.default_rng(zlib.crc32(f"noise:{kind}:{seed}".encode()))
    f = _features(kind)
    w, h = SIZE
    img = Image.new("RGB", SIZE, (255, 255, 255))
    d = ImageDraw.Draw(img)
    ink = (20, 18, 16)
    fx0, fy0, fx1, fy1 = rng.randint(100, 150), rng.randint(150, 230), w - rng.randint(100, 150), h - rng.randint(130, 190)
    n_cols = rng.randint(8, 12)
    fold = (fx1 - fx0) / (n_cols + 1.2) * 1.2 if f["fold"] else 0  # 版心 width
    pitch = (fx1 - fx0 - fold) / n_cols
    px = int(pitch * rng.uniform(0.62, 0.74))
    step = px * rng.uniform(1.04, 1.15)
    rows = int((fy1 - fy0 - 0.3 * px) // step)
    double = rng.random() < 0.6
    d.rectangle((fx0, fy0, fx1, fy1), outline=ink, width=7 if double else 3)
    if double:
        d.rectangle((fx0 + 12, fy0 + 12, fx1 - 12, fy1 - 12), outline=ink, width=2)
    cols = _layout(rng, f, rows, n_cols)
    right_half = n_cols - n_cols // 2
    xs = []
    for c in range(n_cols):
        right = fx1 - (c + (fold / pitch if f["fold"] and c >= right_half else 0)) * pitch
        xs.append(right - pitch / 2)
        if f["rules"] and c > 0 and not (f["fold"] and c == right_half):
            d.line((right, fy0 + 12, right, fy1 - 12), fill=ink, width=2)
    if f["fold"]:  # 版心 with two 魚尾 (fish tails) pointing at each other
        bx1 = fx1 - right_half * pitch
        bx0 = bx1 - fold
        for x in (bx0, bx1):
            d.line((x, fy0 + 12, x, fy1 - 12), fill=ink, width=2)
        for y, s in ((fy0 + (fy1 - fy0) * 0.22, 1), (fy1 - (fy1 - fy0) * 0.22, -1)):
            t = fold * 0.45
            d.polygon([(bx0, y), (bx1, y), (bx1, y + s * t), ((bx0 + bx1) / 2, y + s * t * 0.55), (bx0, y + s * t)], fill=ink)
    top = fy0 + 0.15 * px + step / 2
    for c, col in enumerate(cols):
        for r, kind_, text in col:
            cy = top + r * step
            if kind_ == "c":
                d.text((xs[c], cy), text, font=_font(px), fill=ink, anchor="mm")
            elif kind_ == "p":
                _punct(img, text, xs[c], cy, px, rng.random() < 0.5 if f["punct"] else False, ink)
            else:
                half = (len(text) + 1) // 2
                sp = px * 0.52
                for k, ch in enumerate(text):
                    x = xs[c] + (0.27 if k < half else -0.27) * pitch
                    y = cy - step / 2 + (k % half + 0.5) * step / 2
                    d.text((x, y), ch, font=_font(int(sp)), fill=ink, anchor="mm")
    seals = []
    if f["seal"]:
        for _ in range(rng.randint(1, 2)):
            s = int(pitch * rng.uniform(1.4, 2.6))
            x = int(rng.uniform(fx0, fx1 - s))
            y = int(rng.choice((rng.uniform(fy0, fy0 + 0.3 * (fy1 - fy0)), rng.uniform(fy0, fy1 - s))))
            _seal(img, rng, x, y, s)
            seals.append([x, y, s])
    grey = kind == "degraded" and (seed // len(KINDS)) % 4 == 3  # in a set: every fourth degraded page
    if grey:  # the grey poor scan of pipeline.bench (it works on a file)
        with tempfile.TemporaryDirectory() as tmp:
            img.save(Path(tmp) / "page.png")
            degrade(Path(tmp) / "page.png", seed)
            img = Image.open(Path(tmp) / "page.png").convert("RGB")
    elif f["aged"]:
        img = _age(img, nrng)
    lines = [t for t in (_truth(col) for col in cols) if t]
    meta = {"kind": kind, "seed": seed, "n_cols": n_cols, "rows": rows, "font_px": px, "seals": seals,
            "grey_scan": grey, "features": sorted(k for k, v in f.items() if v),
            "notes": sum(1 for col in cols for e in col if e[1] == "n")}
    return img, lines, meta


def write_set(out: Path, n: int, seed0: int = 0) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        pid = f"vh_{i:03d}_{kind}"
        img, lines, meta = page(seed0 + i, kind)
        img.save(out / f"{pid}.png", dpi=(DPI, DPI))
        (out / f"{pid}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        items.append({"id": pid, "image": f"{pid}.png", "gt": f"{pid}.txt", **meta})
    manifest = {"SYNTHETIC": True, "source": "pipeline/vertical_pages.py (rendered; pymupdf's Droid Sans Fallback)",
                "gt_form": "one line per column, right to left; double-line notes: right half-column, then left, "
                           "then the main text; punctuation as ordinary full-width marks; seals not transcribed",
                "items": items}
    (out / "MANIFEST.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return items


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="output folder, e.g. /tmp/SYNTHETIC_vertical_hard")
    ap.add_argument("-n", type=int, default=24, help="pages (kinds in turn: %s)" % ", ".join(KINDS))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    items = write_set(Path(args.out), args.n, args.seed)
    print(f"{len(items)} pages in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
