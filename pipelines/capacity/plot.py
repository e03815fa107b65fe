"""The replayed day as one PNG: load, workers and latency per policy, stacked on one time axis
(drawn with pipelines.qos.plot's primitives: the project locks no plotting library)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.qos.plot import PALETTE, _line, _ticks, text, write_png


def day_panels(path: str | Path, panels: list[tuple[str, list[tuple[str, list, list]]]], title: str,
               xlabel: str = "hour of day", size: tuple[int, int] = (1100, 900), hlines: dict | None = None) -> Path:
    """panels: (y label, [(series label, xs, ys), ...]); hlines: {panel index: (y, label)} drawn dashed."""
    w, h = size
    img = np.full((h, w, 3), 255, dtype=np.uint8)
    left, right, top, bottom, gap = 90, 300, 44, 56, 34
    ph = (h - top - bottom - gap * (len(panels) - 1)) // len(panels)
    xs_all = np.concatenate([np.asarray(s[1], float) for _l, ss in panels for s in ss])
    x_lo, x_hi = float(xs_all.min()), float(xs_all.max())
    px = lambda x: left + (x - x_lo) / ((x_hi - x_lo) or 1) * (w - left - right)  # noqa: E731
    text(img, w // 2, 10, title, anchor="center")
    labels: dict[str, tuple] = {}
    for k, (ylabel, series) in enumerate(panels):
        y0 = top + k * (ph + gap)
        ys_all = [v for s in series for v in s[2] if v is not None and np.isfinite(v)]
        line_y = (hlines or {}).get(k)
        if line_y:
            ys_all.append(line_y[0])
        y_lo, y_hi = 0.0, (max(ys_all) * 1.08 if ys_all else 1.0) or 1.0
        py = lambda y, y0=y0, y_hi=y_hi: y0 + ph - (y - y_lo) / (y_hi - y_lo) * ph  # noqa: E731
        for t in _ticks(y_lo, y_hi, 4):
            _line(img, left, py(t), w - right, py(t), (228, 228, 228), 1)
            text(img, left - 8, int(py(t)) - 7, f"{t:g}", anchor="right")
        _line(img, left, y0 + ph, w - right, y0 + ph, (0, 0, 0), 2)
        _line(img, left, y0, left, y0 + ph, (0, 0, 0), 2)
        text(img, left + 6, y0 - 16, ylabel)
        if line_y:
            _line(img, left, py(line_y[0]), w - right, py(line_y[0]), (200, 0, 0), 1, dash=5)
            text(img, w - right - 4, int(py(line_y[0])) - 18, line_y[1], color=(200, 0, 0), anchor="right")
        for label, xs, ys in series:
            color = labels.setdefault(label, PALETTE[len(labels) % len(PALETTE)])
            pts = [(x, y) for x, y in zip(xs, ys) if y is not None and np.isfinite(y)]
            for (xa, ya), (xb, yb) in zip(pts, pts[1:]):
                _line(img, px(xa), py(min(ya, y_hi)), px(xb), py(min(yb, y_hi)), color, 2)
    for t in _ticks(x_lo, x_hi, 12):
        _line(img, px(t), h - bottom, px(t), h - bottom + 6, (0, 0, 0), 1)
        text(img, int(px(t)), h - bottom + 12, f"{t:g}", anchor="center")
    text(img, (left + w - right) // 2, h - 24, xlabel, anchor="center")
    for i, (label, color) in enumerate(labels.items()):
        ly = top + 10 + i * 26
        _line(img, w - right + 12, ly + 7, w - right + 46, ly + 7, color, 3)
        text(img, w - right + 52, ly, label)
    return write_png(path, img)
