"""Server-rendered inline SVG charts: bars, histograms and curves with spread bands.

Each function returns one ``<svg>`` element as a string: it draws without JavaScript, weighs a
few kB, and its text is the same bytes for the same numbers (coordinates are rounded to 0.1 px,
labels formatted with fixed precision). Every text in it is XML-escaped here.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np

#: colour of series i (colour-blind-friendly Okabe-Ito order); pool grey is separate
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#d55e00", "#56b4e9", "#f0e442", "#000000")
POOL_COLOUR = "#9a9a9a"
_W, _H = 640, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 28, 44


def colour(i: int) -> str:
    """The colour of series ``i`` (cycles through :data:`PALETTE`)."""
    return PALETTE[i % len(PALETTE)]


def _f(x: float) -> str:
    """A coordinate as text: 0.1 px resolution, no ``-0``."""
    s = f"{x:.1f}"
    return "0.0" if s == "-0.0" else s


def fmt_number(x: float) -> str:
    """A tick or axis value, short and fixed: 3 significant digits."""
    if x == 0 or not np.isfinite(x):
        return "0" if x == 0 else str(x)
    return f"{x:.3g}"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** np.floor(np.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = np.ceil(lo / step) * step
    return [float(v) for v in np.arange(start, hi + step * 1e-9, step)]


def _open(title: str, kind: str, height: int = _H) -> list[str]:
    return [
        f'<svg class="chart" data-chart="{escape(kind)}" viewBox="0 0 {_W} {height}" '
        f'width="{_W}" height="{height}" role="img">',
        f"<title>{escape(title)}</title>",
        f'<text x="{_LEFT}" y="16" class="ct">{escape(title)}</text>',
    ]


def _y_axis(lo: float, hi: float, y_of, height: int, label: str) -> list[str]:
    out = []
    for t in _ticks(lo, hi):
        y = y_of(t)
        out.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{_f(y)}" y2="{_f(y)}" class="grid"/>'
            f'<text x="{_LEFT - 4}" y="{_f(y + 3)}" class="tick" text-anchor="end">'
            f"{fmt_number(t)}</text>"
        )
    out.append(
        f'<text x="12" y="{_f((_TOP + height - _BOTTOM) / 2)}" class="axis" '
        f'transform="rotate(-90 12 {_f((_TOP + height - _BOTTOM) / 2)})" text-anchor="middle">'
        f"{escape(label)}</text>"
    )
    return out


def _legend(names: Sequence[str], colours: Sequence[str], y: float) -> tuple[list[str], int]:
    """Legend swatches from the left at baseline ``y``, wrapped onto more rows when they
    would pass the right edge; returns the elements and the extra height the rows take."""
    out, x, row = [], float(_LEFT), 0
    for name, c in zip(names, colours, strict=True):
        width = 22 + 6.0 * len(name)
        if x > _LEFT and x + width > _W - _RIGHT:
            x, row = float(_LEFT), row + 1
        yy = y + 14 * row
        out.append(
            f'<rect x="{_f(x)}" y="{_f(yy - 9)}" width="10" height="10" fill="{c}"/>'
            f'<text x="{_f(x + 14)}" y="{_f(yy)}" class="tick">{escape(name)}</text>'
        )
        x += width
    return out, 14 * row


def _close(
    out: list[str], legend: tuple[list[str], int], title: str, kind: str, height: int
) -> str:
    """The finished ``<svg>``: the legend appended, the height grown by its extra rows."""
    parts, extra = legend
    if extra:
        out[0] = _open(title, kind, height + extra)[0]
    return "".join([*out, *parts, "</svg>"])


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: dict[str, Sequence[float]],
    colours: Sequence[str],
    *,
    y_label: str = "share",
) -> str:
    """Grouped bars: one group per category, one bar per series (e.g. pool vs selections)."""
    height = _H + 20
    out = _open(title, "bars", height)
    values = np.array([list(v) for v in series.values()], dtype=np.float64).reshape(
        len(series), len(categories)
    )
    top = float(values.max(initial=0.0)) or 1.0
    plot_h = height - _TOP - _BOTTOM - 20

    def y_of(v: float) -> float:
        return _TOP + plot_h * (1 - v / top)

    out += _y_axis(0.0, top, y_of, height - 20, y_label)
    n_cat = max(len(categories), 1)
    group_w = (_W - _LEFT - _RIGHT) / n_cat
    bar_w = max(group_w * 0.8 / max(len(series), 1), 0.5)
    for j, cat in enumerate(categories):
        x0 = _LEFT + j * group_w + group_w * 0.1
        for i in range(len(series)):
            v = float(values[i, j])
            y = y_of(v)
            out.append(
                f'<rect x="{_f(x0 + i * bar_w)}" y="{_f(y)}" width="{_f(bar_w)}" '
                f'height="{_f(_TOP + plot_h - y)}" fill="{colours[i]}">'
                f"<title>{escape(cat)}: {v:.4f}</title></rect>"
            )
        if n_cat <= 40:
            cx = x0 + group_w * 0.4
            ly = _TOP + plot_h + 10
            out.append(
                f'<text x="{_f(cx)}" y="{_f(ly)}" class="tick" text-anchor="end" '
                f'transform="rotate(-40 {_f(cx)} {_f(ly)})">{escape(cat[:14])}</text>'
            )
    return _close(out, _legend(list(series), colours, height - 6), title, "bars", height)


def histogram(
    title: str,
    series: dict[str, np.ndarray],
    colours: Sequence[str],
    *,
    bins: int = 30,
    x_label: str = "value",
) -> str:
    """Overlaid step histograms (share of each series' rows per bin) on shared bin edges."""
    finite = [v[np.isfinite(v)] for v in series.values()]
    both = np.concatenate(finite) if finite else np.empty(0)
    lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    shares = [np.histogram(v, bins=edges)[0] / max(v.size, 1) for v in finite]
    top = max((float(s.max(initial=0)) for s in shares), default=0.0) or 1.0
    out = _open(title, "histogram")
    plot_h = _H - _TOP - _BOTTOM

    def x_of(v: float) -> float:
        return _LEFT + (_W - _LEFT - _RIGHT) * (v - lo) / (hi - lo)

    def y_of(v: float) -> float:
        return _TOP + plot_h * (1 - v / top)

    out += _y_axis(0.0, top, y_of, _H, "share of rows")
    for t in _ticks(lo, hi):
        out.append(
            f'<text x="{_f(x_of(t))}" y="{_TOP + plot_h + 14}" class="tick" '
            f'text-anchor="middle">{fmt_number(t)}</text>'
        )
    out.append(
        f'<text x="{_f((_LEFT + _W) / 2)}" y="{_H - 18}" class="axis" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    for s, c in zip(shares, colours, strict=False):
        points = [f"{_f(x_of(lo))},{_f(y_of(0))}"]
        for k in range(bins):
            y = _f(y_of(float(s[k])))
            points.append(f"{_f(x_of(edges[k]))},{y} {_f(x_of(edges[k + 1]))},{y}")
        points.append(f"{_f(x_of(hi))},{_f(y_of(0))}")
        out.append(
            f'<path d="M{" L".join(points)} Z" fill="{c}" fill-opacity="0.25" '
            f'stroke="{c}" stroke-width="1.5"/>'
        )
    return _close(out, _legend(list(series), colours, _H - 4), title, "histogram", _H)


def line_chart(
    title: str,
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    colours: Sequence[str],
    *,
    x_label: str,
    y_label: str,
) -> str:
    """Curves with spread bands: each series is (x, mean, low, high), drawn as a line over a
    translucent band from low to high; x and y ranges cover every series. Points whose mean
    is not finite (a Spearman of constant predictions) are left out; a band edge that is not
    finite falls back to the mean."""
    clean = {}
    for name, (x, mean, low, high) in curves.items():
        x, mean, low, high = (np.asarray(a, dtype=np.float64) for a in (x, mean, low, high))
        ok = np.isfinite(mean) & np.isfinite(x)
        low = np.where(np.isfinite(low), low, mean)[ok]
        high = np.where(np.isfinite(high), high, mean)[ok]
        # a series without one finite value keeps its legend entry, marked, and draws nothing
        clean[name if ok.any() else f"{name} (no finite values)"] = (x[ok], mean[ok], low, high)
    curves = clean
    xs = np.concatenate([c[0] for c in curves.values()]) if curves else np.zeros(1)
    xs = xs if xs.size else np.zeros(1)
    ys = np.concatenate([np.r_[c[2], c[3], c[1]] for c in curves.values()]) if curves else xs
    ys = ys[np.isfinite(ys)]
    x_lo, x_hi = float(xs.min()), float(xs.max())
    y_lo, y_hi = (float(ys.min()), float(ys.max())) if ys.size else (0.0, 1.0)
    if x_hi <= x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    pad = (y_hi - y_lo) * 0.05 or 0.05
    y_lo, y_hi = y_lo - pad, y_hi + pad
    out = _open(title, "curves")
    plot_h = _H - _TOP - _BOTTOM

    def x_of(v: float) -> float:
        return _LEFT + (_W - _LEFT - _RIGHT) * (v - x_lo) / (x_hi - x_lo)

    def y_of(v: float) -> float:
        return _TOP + plot_h * (1 - (v - y_lo) / (y_hi - y_lo))

    out += _y_axis(y_lo, y_hi, y_of, _H, y_label)
    for t in _ticks(x_lo, x_hi):
        out.append(
            f'<text x="{_f(x_of(t))}" y="{_TOP + plot_h + 14}" class="tick" '
            f'text-anchor="middle">{fmt_number(t)}</text>'
        )
    out.append(
        f'<text x="{_f((_LEFT + _W) / 2)}" y="{_H - 18}" class="axis" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    for (name, (x, mean, low, high)), c in zip(curves.items(), colours, strict=False):
        if x.size == 0:
            continue
        upper = [f"{_f(x_of(a))},{_f(y_of(b))}" for a, b in zip(x, high, strict=True)]
        lower = [f"{_f(x_of(a))},{_f(y_of(b))}" for a, b in zip(x[::-1], low[::-1], strict=True)]
        out.append(f'<path d="M{" L".join(upper + lower)} Z" fill="{c}" fill-opacity="0.18"/>')
        line = [f"{_f(x_of(a))},{_f(y_of(b))}" for a, b in zip(x, mean, strict=True)]
        out.append(
            f'<path d="M{" L".join(line)}" fill="none" stroke="{c}" stroke-width="2">'
            f"<title>{escape(name)}</title></path>"
        )
        for a, b in zip(x, mean, strict=True):
            out.append(f'<circle cx="{_f(x_of(a))}" cy="{_f(y_of(b))}" r="2.5" fill="{c}"/>')
    return _close(out, _legend(list(curves), colours, _H - 4), title, "curves", _H)


def scatter(
    title: str,
    x: np.ndarray,
    y: np.ndarray,
    labels: Sequence[str],
    *,
    x_label: str,
    y_label: str,
) -> str:
    """Points (x, y) on equal axes with the diagonal y = x (e.g. predicted vs true accuracy);
    each point's label is its tooltip."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    both = np.r_[x, y]
    lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
    pad = (hi - lo) * 0.06 or 0.05
    lo, hi = lo - pad, hi + pad
    height = _W - 120
    plot_h = height - _TOP - _BOTTOM
    plot_w = plot_h  # square: the diagonal at 45 degrees
    out = _open(title, "scatter", height)

    def x_of(v: float) -> float:
        return _LEFT + plot_w * (v - lo) / (hi - lo)

    def y_of(v: float) -> float:
        return _TOP + plot_h * (1 - (v - lo) / (hi - lo))

    for t in _ticks(lo, hi):
        out.append(
            f'<line x1="{_f(x_of(t))}" x2="{_f(x_of(t))}" y1="{_TOP}" y2="{_f(_TOP + plot_h)}" '
            f'class="grid"/><line x1="{_LEFT}" x2="{_f(_LEFT + plot_w)}" y1="{_f(y_of(t))}" '
            f'y2="{_f(y_of(t))}" class="grid"/>'
            f'<text x="{_f(x_of(t))}" y="{_f(_TOP + plot_h + 14)}" class="tick" '
            f'text-anchor="middle">{fmt_number(t)}</text>'
            f'<text x="{_LEFT - 4}" y="{_f(y_of(t) + 3)}" class="tick" text-anchor="end">'
            f"{fmt_number(t)}</text>"
        )
    out.append(
        f'<path d="M{_f(x_of(lo))},{_f(y_of(lo))} L{_f(x_of(hi))},{_f(y_of(hi))}" '
        'stroke="#888" stroke-dasharray="4 3" fill="none"/>'
        f'<text x="{_f(_LEFT + plot_w / 2)}" y="{height - 18}" class="axis" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f'<text x="12" y="{_f(_TOP + plot_h / 2)}" class="axis" text-anchor="middle" '
        f'transform="rotate(-90 12 {_f(_TOP + plot_h / 2)})">{escape(y_label)}</text>'
    )
    for a, b, label in zip(x, y, labels, strict=True):
        out.append(
            f'<circle cx="{_f(x_of(a))}" cy="{_f(y_of(b))}" r="4" fill="{PALETTE[0]}" '
            f'fill-opacity="0.8"><title>{escape(label)}: {a:.4f} vs {b:.4f}</title></circle>'
        )
    out.append("</svg>")
    return "".join(out)
