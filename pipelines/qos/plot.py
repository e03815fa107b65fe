"""Line charts as PNG files with numpy and zlib only (the project locks no plotting library).

Why: the sensitivity figures (the paper's Fig. 6-7) must land as PNGs in docs/img, and a
line chart needs little: axes, ticks, a legend and lines. Text uses a 5 x 7 bitmap font
(upper case; lower case is drawn as upper case), scaled x2.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

_FONT = {  # 5 x 7 glyphs, one string of 7 rows per character, '#' = ink
    "0": " ### #   ##  ### # ###  ##   # ### ", "1": "  #   ##    #    #    #    #   ### ",
    "2": " ### #   #    #   #   #   #   #####", "3": "#####   #   #     #     ##   # ### ",
    "4": "   #   ##  # # #  # #####   #    # ", "5": "######    ####     #    ##   # ### ",
    "6": "  ##  #   #    #### #   ##   # ### ", "7": "#####    #   #   #   #    #    #   ",
    "8": " ### #   ##   # ### #   ##   # ### ", "9": " ### #   ##   # ####    #   #  ##  ",
    "A": " ### #   ##   #######   ##   ##   #", "B": "#### #   ##   ##### #   ##   ##### ",
    "C": " ### #   ##    #    #    #   # ### ", "D": "###  #  # #   ##   ##   ##  # ###  ",
    "E": "######    #    #### #    #    #####", "F": "######    #    #### #    #    #    ",
    "G": " ### #   ##    # ####   ##   # ####", "H": "#   ##   ##   #######   ##   ##   #",
    "I": " ###   #    #    #    #    #   ### ", "J": "  ###   #    #    #    # #  #  ##  ",
    "K": "#   ##  # # #  ##   # #  #  # #   #", "L": "#    #    #    #    #    #    #####",
    "M": "#   ### ### # ## # ##   ##   ##   #", "N": "#   ##   ###  ## # ##  ###   ##   #",
    "O": " ### #   ##   ##   ##   ##   # ### ", "P": "#### #   ##   ##### #    #    #    ",
    "Q": " ### #   ##   ##   ## # ##  #  ## #", "R": "#### #   ##   ##### # #  #  # #   #",
    "S": " #####    #     ###     #    ##### ", "T": "#####  #    #    #    #    #    #  ",
    "U": "#   ##   ##   ##   ##   ##   # ### ", "V": "#   ##   ##   ##   ##   # # #   #  ",
    "W": "#   ##   ##   ## # ## # ## # # # # ", "X": "#   ##   # # #   #   # # #   ##   #",
    "Y": "#   ##   # # #   #    #    #    #  ", "Z": "#####    #   #   #   #   #    #####",
    ".": "                              ##   ", ",": "                         ##   #  # ",
    "-": "               #####               ", "%": "##   ##  #   #   #   #   #  ##   ##",
    "(": "   #   #   #    #    #     #     # ", ")": " #     #     #    #    #   #   #   ",
    "=": "          #####     #####          ", ":": "      ##   ##        ##   ##       ",
    "/": "        #   #   #   #   #          ", "+": "       #    #  #####  #    #       ",
    " ": " " * 35, "_": " " * 30 + "#####",
}
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127)]


def _glyph(ch: str) -> np.ndarray:
    rows = _FONT.get(ch.upper(), _FONT[" "]).ljust(35)[:35]
    return np.array([[c == "#" for c in rows[i * 5:(i + 1) * 5]] for i in range(7)])


def text(img: np.ndarray, x: int, y: int, s: str, color=(0, 0, 0), scale: int = 2, anchor: str = "left") -> None:
    """Draw s with its top-left at (x, y) (anchor 'right' / 'center' shift it)."""
    width = len(s) * 6 * scale
    if anchor == "right":
        x -= width
    elif anchor == "center":
        x -= width // 2
    for i, ch in enumerate(s):
        g = np.kron(_glyph(ch), np.ones((scale, scale), dtype=bool))
        x0 = x + i * 6 * scale
        h, w = g.shape
        ys, xs = slice(max(y, 0), min(y + h, img.shape[0])), slice(max(x0, 0), min(x0 + w, img.shape[1]))
        sub = g[ys.start - y: ys.stop - y, xs.start - x0: xs.stop - x0]
        img[ys, xs][sub] = color


def _line(img, x0, y0, x1, y1, color, width=2, dash: int | None = None) -> None:
    n = int(max(abs(x1 - x0), abs(y1 - y0)) * 2) + 1
    for j, t in enumerate(np.linspace(0.0, 1.0, n)):
        if dash and (j // (2 * dash)) % 2 == 1:
            continue
        x, y = int(round(x0 + t * (x1 - x0))), int(round(y0 + t * (y1 - y0)))
        img[max(y - width // 2, 0): y + (width + 1) // 2, max(x - width // 2, 0): x + (width + 1) // 2] = color


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo if hi > lo else 1.0
    step = 10 ** np.floor(np.log10(span / n))
    for m in (1, 2, 2.5, 5, 10):
        if span / (m * step) <= n:
            step *= m
            break
    start = np.ceil(lo / step) * step
    return [float(v) for v in np.arange(start, hi + step * 1e-9, step)]


def write_png(path: str | Path, img: np.ndarray) -> Path:
    """RGB uint8 (h, w, 3) -> PNG (filter 0 on every row, zlib level 9)."""
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path = Path(path)
    path.write_bytes(png)
    return path


def line_chart(path: str | Path, series: list[tuple], title: str = "", xlabel: str = "", ylabel: str = "",
               size: tuple[int, int] = (1000, 620)) -> Path:
    """series: (label, xs, ys[, dashed]) -> a PNG line chart with markers and a legend on the right."""
    w, h = size
    img = np.full((h, w, 3), 255, dtype=np.uint8)
    left, right, top, bottom = 90, 250, 50, 70
    xs_all = np.concatenate([np.asarray(s[1], float) for s in series])
    ys_all = np.concatenate([np.asarray(s[2], float) for s in series])
    x_lo, x_hi = float(xs_all.min()), float(xs_all.max())
    pad = (ys_all.max() - ys_all.min()) * 0.05 or 0.01
    y_lo, y_hi = float(ys_all.min() - pad), float(ys_all.max() + pad)
    px = lambda x: left + (x - x_lo) / ((x_hi - x_lo) or 1) * (w - left - right)  # noqa: E731
    py = lambda y: h - bottom - (y - y_lo) / ((y_hi - y_lo) or 1) * (h - top - bottom)  # noqa: E731
    for t in _ticks(y_lo, y_hi, 6):
        _line(img, left, py(t), w - right, py(t), (225, 225, 225), 1)
        text(img, left - 8, int(py(t)) - 7, f"{t:.3f}".rstrip("0").rstrip(".") if t else "0", anchor="right")
    for t in _ticks(x_lo, x_hi, 10):
        _line(img, px(t), h - bottom, px(t), h - bottom + 6, (0, 0, 0), 1)
        text(img, int(px(t)), h - bottom + 12, f"{t:g}", anchor="center")
    _line(img, left, h - bottom, w - right, h - bottom, (0, 0, 0), 2)
    _line(img, left, top, left, h - bottom, (0, 0, 0), 2)
    text(img, w // 2, 12, title, anchor="center")
    text(img, (left + w - right) // 2, h - 28, xlabel, anchor="center")
    text(img, 8, top - 30, ylabel)
    for i, s in enumerate(series):
        label, xs, ys = s[0], np.asarray(s[1], float), np.asarray(s[2], float)
        dashed = len(s) > 3 and s[3]
        color = PALETTE[i % len(PALETTE)]
        for j in range(len(xs) - 1):
            _line(img, px(xs[j]), py(ys[j]), px(xs[j + 1]), py(ys[j + 1]), color, 3, dash=6 if dashed else None)
        for x, y in zip(xs, ys):
            cx, cy = int(px(x)), int(py(y))
            img[cy - 3: cy + 4, cx - 3: cx + 4] = color
        best = int(np.argmin(ys))
        cx, cy = int(px(xs[best])), int(py(ys[best]))
        img[cy - 6: cy + 7, cx - 6: cx - 4] = color
        img[cy - 6: cy + 7, cx + 5: cx + 7] = color
        ly = top + 10 + i * 26
        _line(img, w - right + 15, ly + 7, w - right + 55, ly + 7, color, 3, dash=6 if dashed else None)
        text(img, w - right + 62, ly, label)
    text(img, w - right + 15, top + 20 + len(series) * 26, "bars = minimum", scale=2)
    text(img, w - right + 15, top + 44 + len(series) * 26, "dashed = tuned", scale=2)
    return write_png(path, img)
