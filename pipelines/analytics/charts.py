"""Bar charts and general line charts as PNG files, on the primitives of pipelines.qos.plot
(numpy + zlib: the lock holds no plotting library).

Why a module beside plot.py: its `line_chart` is the QoS sensitivity figure (it marks each
series' minimum and says "dashed = tuned"); the report needs plain lines over runs, grouped
and stacked bars, and text labels on the x axis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.qos.plot import PALETTE, _line, _ticks, text, write_png

_CHAR_W = 12  # the plot font at scale 2: 5 x 7 glyphs plus a column, doubled
GRID, AXIS, MUTED = (225, 225, 225), (0, 0, 0), (110, 110, 110)


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}".replace(",", " ")
    if abs(v) >= 10:
        return f"{v:.0f}"
    return f"{v:.3f}".rstrip("0").rstrip(".")


def _fit(s: str, width_px: int, scale: int = 2) -> str:
    """`s` cut to fit `width_px`, in characters the plot font has (it has no @ ; # < > [ ])."""
    s = s.replace("@", " at ").replace(";", ",").replace("#", "no.").replace("[", "(").replace("]", ")")
    s = s.replace("<", "under").replace(">", "over")
    n = max(1, width_px // (6 * scale))
    return s if len(s) <= n else s[: max(1, n - 1)] + "."


def _frame(w: int, h: int, title: str, subtitle: str = "") -> np.ndarray:
    img = np.full((h, w, 3), 255, dtype=np.uint8)
    text(img, w // 2, 12, _fit(title, w - 20), anchor="center")
    if subtitle:
        text(img, w // 2, 34, _fit(subtitle, w - 20), color=MUTED, anchor="center")
    return img


def _y_axis(img, left, right, top, bottom, lo, hi, ylabel):
    h, w = img.shape[:2]
    py = lambda y: h - bottom - (y - lo) / ((hi - lo) or 1) * (h - top - bottom)  # noqa: E731
    for t in _ticks(lo, hi, 6):
        _line(img, left, py(t), w - right, py(t), GRID, 1)
        text(img, left - 8, int(py(t)) - 7, _fmt(t), anchor="right")
    _line(img, left, h - bottom, w - right, h - bottom, AXIS, 2)
    _line(img, left, top, left, h - bottom, AXIS, 2)
    if ylabel:
        text(img, 8, top - 24, _fit(ylabel, w - 16))
    return py


def _legend(img, x: int, y: int, labels: list[str], width: int) -> None:
    for i, label in enumerate(labels):
        ly = y + i * 26
        color = PALETTE[i % len(PALETTE)]
        img[ly + 2: ly + 14, x: x + 24] = color
        text(img, x + 32, ly, _fit(label, width - 40))


def bar_chart(path: str | Path, categories: list[str], series: list[tuple[str, list[float]]], title: str = "",
              ylabel: str = "", stacked: bool = False, subtitle: str = "", size: tuple[int, int] = (1100, 620),
              value_labels: bool = True) -> Path:
    """Vertical bars: one group per category, one bar per series (or one stacked bar per category)."""
    if not categories or not series:
        raise ValueError("bar_chart: nothing to draw (no categories or no series)")
    vals = np.array([[float(v) if v is not None else 0.0 for v in s[1]] for s in series])
    if vals.shape[1] != len(categories):
        raise ValueError(f"bar_chart: {len(categories)} categories but series of length {vals.shape[1]}")
    w, h = size
    left, right, top, bottom = 90, 270, 86, 80
    img = _frame(w, h, title, subtitle)
    hi = float(vals.sum(axis=0).max() if stacked else vals.max()) or 1.0
    py = _y_axis(img, left, right, top, bottom, 0.0, hi * 1.08, ylabel)
    group_w = (w - left - right) / len(categories)
    n_bars = 1 if stacked else len(series)
    bar_w = max(3, int(group_w * 0.8 / n_bars))
    for j, cat in enumerate(categories):
        g0 = left + j * group_w + group_w * 0.1
        base = 0.0
        for i in range(len(series)):
            v = vals[i, j]
            x0 = int(g0 + (0 if stacked else i * bar_w))
            y_lo, y_hi = (base, base + v) if stacked else (0.0, v)
            top_px, bot_px = int(py(y_hi)), int(py(y_lo))
            if v > 0:
                img[top_px: max(bot_px, top_px + 1), x0: x0 + bar_w - 2] = PALETTE[i % len(PALETTE)]
            if value_labels and v > 0 and not stacked and bar_w >= 6 * 2 * min(len(_fmt(v)), 4):
                text(img, x0 + bar_w // 2, top_px - 18, _fmt(v), anchor="center", scale=2 if bar_w > 40 else 1)
            base += v if stacked else 0
        if value_labels and stacked and base > 0:
            text(img, int(g0 + bar_w / 2), int(py(base)) - 18, _fmt(base), anchor="center")
        text(img, int(left + (j + 0.5) * group_w), h - bottom + 12, _fit(cat, int(group_w)), anchor="center")
    _legend(img, w - right + 20, top + 6, [s[0] for s in series], right - 24)
    return write_png(path, img)


def line_chart(path: str | Path, xlabels: list[str], series: list[tuple[str, list[float | None]]], title: str = "",
               ylabel: str = "", subtitle: str = "", size: tuple[int, int] = (1100, 620),
               y_range: tuple[float, float] | None = None) -> Path:
    """Lines over ordered points (runs, models, hours) named by `xlabels`; None leaves a gap."""
    if not xlabels or not series:
        raise ValueError("line_chart: nothing to draw (no points or no series)")
    w, h = size
    left, right, top, bottom = 90, 270, 86, 80
    img = _frame(w, h, title, subtitle)
    ys_all = np.array([float(v) for s in series for v in s[1] if v is not None])
    if ys_all.size == 0:
        raise ValueError("line_chart: every value is missing")
    if y_range:
        lo, hi = y_range
    else:
        pad = (ys_all.max() - ys_all.min()) * 0.08 or abs(ys_all.max()) * 0.1 or 0.01
        lo, hi = float(ys_all.min() - pad), float(ys_all.max() + pad)
    py = _y_axis(img, left, right, top, bottom, lo, hi, ylabel)
    n = len(xlabels)
    span = w - left - right - 60
    px = lambda k: left + 30 + (k / (n - 1) * span if n > 1 else span / 2)  # noqa: E731
    every = max(1, int(np.ceil(n * 7 / ((w - left - right) / _CHAR_W))))  # labels of ~7 chars must not overlap
    for k, label in enumerate(xlabels):
        _line(img, px(k), h - bottom, px(k), h - bottom + 6, AXIS, 1)
        if k % every == 0:
            text(img, int(px(k)), h - bottom + 12, _fit(label, int((w - left - right) / n * every)), anchor="center")
    for i, (_label, ys) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        pts = [(px(k), py(float(v))) for k, v in enumerate(ys) if v is not None]
        prev = None
        for k, v in enumerate(ys):
            if v is None:
                prev = None
                continue
            cur = (px(k), py(float(v)))
            if prev is not None:
                _line(img, prev[0], prev[1], cur[0], cur[1], color, 3)
            prev = cur
        for x, y in pts:
            img[int(y) - 4: int(y) + 5, int(x) - 4: int(x) + 5] = color
    _legend(img, w - right + 20, top + 6, [s[0] for s in series], right - 24)
    return write_png(path, img)
