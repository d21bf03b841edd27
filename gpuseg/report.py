"""The HTML report: one self-contained file with inline SVG charts, readable with no network.

Every chart is drawn here in Python as an ``<svg class="chart">`` element; the page loads nothing
(no script library, font or image from elsewhere). A short script at the end of the page checks
that every chart has content and marks the ``<html>`` element ``data-rendered="ok"``, so a
headless browser can tell a complete page from a broken one.

Charts: segment sizes and revenue shares, names, the profile heatmap of z-scores, the share of
ambiguous customers, the k diagnostics curves, a 2-D projection (principal components) of a
sample coloured by segment, the RFM grid, and the migration matrix from a previous run.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Categorical colours for segments (colour-blind-safe first eight, then extras).
PALETTE = (
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#1f77b4", "#8c564b", "#17becf", "#bcbd22", "#7f7f7f", "#d62728",
)  # fmt: skip
_FONT = "font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif"


@dataclass
class Segment:
    """One segment as the report shows it."""

    index: int
    name: str
    customers: int
    share: float
    revenue_share: float | None = None
    ambiguous_share: float | None = None
    description: str = ""


@dataclass
class KDiagnostics:
    """Scores per k: ``metrics`` maps a metric name to one value per ``k`` (None when missing)."""

    k: list[int]
    metrics: dict[str, list[float | None]]
    recommended: int | None = None
    reason: str = ""


@dataclass
class ReportData:
    """Everything the report draws; optional parts are left out of the page when None.

    Attributes
    ----------
    title : str
        Page heading.
    facts : list of (str, str)
        Lines of the header table (data, model, as-of date, rows...).
    segments : list of Segment
        The segments, in the order they are drawn.
    features : list of str
        Feature names, the columns of ``zscores``.
    zscores : ndarray, shape (n_segments, n_features)
        How far each segment sits above or below everyone, in standard deviations: the
        profile's ``rank_z`` (see :mod:`gpuseg.profiles`).
    means : ndarray, shape (n_segments, n_features), optional
        Segment means in original units, shown in the heatmap's tooltips.
    k_diagnostics : KDiagnostics, optional
    projection : ndarray, shape (n_points, 2), optional
        A sample projected on two principal components.
    projection_labels : ndarray, shape (n_points,), optional
        The segment (index into ``segments``) of each projected point.
    projection_note : str
    rfm_grid : ndarray, shape (5, 5), optional
        Customers per (R score, FM score) cell, R on rows 1..5, FM on columns 1..5.
    migration : ndarray, shape (n_old, n_new), optional
        Customers per (previous segment, current segment).
    migration_labels : (list of str, list of str)
        Row and column labels of ``migration``.
    """

    title: str
    segments: list[Segment]
    facts: list[tuple[str, str]] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    zscores: np.ndarray | None = None
    means: np.ndarray | None = None
    k_diagnostics: KDiagnostics | None = None
    projection: np.ndarray | None = None
    projection_labels: np.ndarray | None = None
    projection_note: str = ""
    rfm_grid: np.ndarray | None = None
    migration: np.ndarray | None = None
    migration_labels: tuple[list[str], list[str]] = ((), ())


def project_2d(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows on their first two principal components (NumPy SVD of the centred rows).

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_features)

    Returns
    -------
    points : ndarray, shape (n_samples, 2)
    explained : ndarray, shape (2,)
        Share of the variance each component explains.

    Examples
    --------
    >>> X = np.array([[0.0, 0.0], [2.0, 0.1], [4.0, 0.0]])
    >>> points, explained = project_2d(X)
    >>> bool(explained[0] > 0.99)
    True
    """
    X = np.asarray(X, dtype=np.float64)
    centred = X - X.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[:2]
    if vt.shape[0] < 2:
        vt = np.vstack([vt, np.zeros((2 - vt.shape[0], X.shape[1]))])
    # Fix the signs, so the picture does not flip between runs.
    signs = np.sign(vt[np.arange(2), np.abs(vt).argmax(axis=1)])
    vt = vt * np.where(signs == 0, 1.0, signs)[:, None]
    total = float((singular**2).sum()) or 1.0
    explained = np.zeros(2)
    explained[: min(2, len(singular))] = singular[:2] ** 2 / total
    return centred @ vt.T, explained


def render_report(data: ReportData) -> str:
    """Render the report as one HTML document (a str).

    Examples
    --------
    >>> page = render_report(ReportData("demo", [Segment(0, "all", 10, 1.0)]))
    >>> page.startswith("<!DOCTYPE html>") and 'class="chart"' in page
    True
    """
    sections = [_facts_table(data.facts), _segments_section(data)]
    if data.zscores is not None and len(data.features):
        sections.append(_section("Profiles: how each segment ranks against everyone (rank z)",
                                 _heatmap_profiles(data)))  # fmt: skip
    if any(s.ambiguous_share is not None for s in data.segments):
        sections.append(_section("Ambiguous customers per segment", _ambiguous_chart(data)))
    if data.k_diagnostics is not None and data.k_diagnostics.k:
        sections.append(_section("Choosing k", _k_curves(data.k_diagnostics)))
    if data.projection is not None and len(data.projection):
        sections.append(_section("A sample in two dimensions", _scatter(data)))
    if data.rfm_grid is not None:
        sections.append(_section("RFM grid: customers by recency and frequency-monetary score",
                                 _rfm_grid(np.asarray(data.rfm_grid))))  # fmt: skip
    if data.migration is not None:
        sections.append(_section("Migration from the previous run", _migration(data)))
    body = "\n".join(sections)
    title = html.escape(data.title)
    return f"""<!DOCTYPE html>
<html lang="en" data-rendered="no">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ {_FONT}; margin: 2rem auto; max-width: 1200px; color: #222; padding: 0 1rem; }}
h1 {{ font-size: 1.6rem; }} h2 {{ font-size: 1.2rem; margin-top: 2.2rem; }}
table {{ border-collapse: collapse; font-size: 0.9rem; }}
td, th {{ padding: 0.25rem 0.7rem; border-bottom: 1px solid #e3e3e3; text-align: left; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.swatch {{ display: inline-block; width: 0.8rem; height: 0.8rem; border-radius: 2px;
          margin-right: 0.4rem; vertical-align: middle; }}
svg.chart {{ display: block; max-width: 100%; height: auto; margin: 0.6rem 0; }}
svg.chart text {{ {_FONT}; font-size: 12px; fill: #333; }}
.note {{ color: #666; font-size: 0.85rem; }}
</style>
</head>
<body>
<h1>{title}</h1>
{body}
<p class="note">Made by gpuseg. This page is self-contained: it loads nothing from elsewhere.</p>
<script>
(function () {{
  var charts = document.querySelectorAll("svg.chart");
  var empty = Array.prototype.filter.call(charts, function (c) {{
    return c.childElementCount === 0 || c.getBBox().width === 0;
  }});
  document.documentElement.setAttribute("data-charts", String(charts.length));
  document.documentElement.setAttribute("data-rendered", empty.length ? "empty" : "ok");
}})();
</script>
</body>
</html>
"""


def write_report(path: str | os.PathLike, data: ReportData) -> Path:
    """Render the report and write it to ``path`` atomically (temporary name, then rename)."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        temporary.write_text(render_report(data), encoding="utf-8")
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


# -- sections ------------------------------------------------------------------------------------


def _section(heading: str, content: str) -> str:
    return f"<section>\n<h2>{html.escape(heading)}</h2>\n{content}\n</section>"


def _facts_table(facts: Sequence[tuple[str, str]]) -> str:
    if not facts:
        return ""
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts
    )
    return f"<table class='facts'>{rows}</table>"


def _segments_section(data: ReportData) -> str:
    rows = []
    for s in data.segments:
        colour = _colour(s.index)
        revenue = "" if s.revenue_share is None else f"{s.revenue_share:.1%}"
        ambiguous = "" if s.ambiguous_share is None else f"{s.ambiguous_share:.1%}"
        rows.append(
            f"<tr><td><span class='swatch' style='background:{colour}'></span>{s.index}</td>"
            f"<td>{html.escape(s.name)}</td><td class='num'>{s.customers:,}</td>"
            f"<td class='num'>{s.share:.1%}</td><td class='num'>{revenue}</td>"
            f"<td class='num'>{ambiguous}</td><td>{html.escape(s.description)}</td></tr>"
        )
    table = (
        "<table><tr><th>segment</th><th>name</th><th>customers</th><th>share</th>"
        "<th>revenue share</th><th>ambiguous</th><th>description</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    return _section("Segments: sizes and revenue shares", _size_bars(data) + table)


# -- charts --------------------------------------------------------------------------------------


def _svg(width: int, height: int, parts: list[str], label: str) -> str:
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="{html.escape(label)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">' + "".join(parts) + "</svg>"
    )


def _text(x: float, y: float, content: str, anchor: str = "start", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>'
        f"{html.escape(str(content))}</text>"
    )


def _rect(x, y, w, h, fill, title: str = "", extra: str = "") -> str:
    tip = f"<title>{html.escape(title)}</title>" if title else ""
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
        f'fill="{fill}" {extra}>{tip}</rect>'
    )


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _size_bars(data: ReportData) -> str:
    """Horizontal bars: share of customers and share of revenue per segment, side by side."""
    segments = data.segments
    has_revenue = any(s.revenue_share is not None for s in segments)
    label_w, bar_w, row_h = 240, 380, 34
    width = label_w + 2 * bar_w + 90 if has_revenue else label_w + bar_w + 60
    height = 40 + row_h * len(segments)
    top = max([s.share for s in segments] + [s.revenue_share or 0 for s in segments] + [1e-9])
    parts = [_text(label_w, 20, "share of customers", extra='font-weight="600"')]
    if has_revenue:
        parts.append(_text(label_w + bar_w + 30, 20, "share of revenue", extra='font-weight="600"'))
    for row, s in enumerate(segments):
        y = 32 + row * row_h
        parts.append(_text(label_w - 8, y + 16, _short(f"{s.index}: {s.name}", 34), "end"))
        w = bar_w * s.share / top
        parts.append(_rect(label_w, y + 4, w, 18, _colour(s.index), f"{s.name}: {s.share:.1%}"))
        parts.append(_text(label_w + w + 4, y + 17, f"{s.share:.1%}"))
        if s.revenue_share is not None:
            x0 = label_w + bar_w + 30
            w = bar_w * s.revenue_share / top
            title = f"{s.name}: {s.revenue_share:.1%} of revenue"
            parts.append(_rect(x0, y + 4, w, 18, _colour(s.index), title, 'opacity="0.75"'))
            parts.append(_text(x0 + w + 4, y + 17, f"{s.revenue_share:.1%}"))
    return _svg(width, height, parts, "segment sizes and revenue shares")


def _diverging(z: float, limit: float = 2.0) -> str:
    """Blue (below the population) to white to red (above), saturating at +-``limit``."""
    t = max(-1.0, min(1.0, z / limit)) if math.isfinite(z) else 0.0
    if t >= 0:
        r, g, b = 255, int(255 - 155 * t), int(255 - 170 * t)
    else:
        r, g, b = int(255 + 170 * t), int(255 + 110 * t), 255
    return f"rgb({r},{g},{b})"


def _heatmap_profiles(data: ReportData) -> str:
    z = np.asarray(data.zscores, dtype=np.float64)
    n_rows, n_cols = z.shape
    label_w, cell_w, cell_h, head_h = 240, max(56, min(90, 900 // max(n_cols, 1))), 30, 110
    width, height = label_w + cell_w * n_cols + 20, head_h + cell_h * n_rows + 10
    parts = []
    for j, name in enumerate(data.features):
        x = label_w + cell_w * (j + 0.5)
        parts.append(_text(x, head_h - 8, _short(name, 18), "start",
                           f'transform="rotate(-40 {x:.1f} {head_h - 8})"'))  # fmt: skip
    for i, s in enumerate(data.segments[:n_rows]):
        y = head_h + cell_h * i
        parts.append(_text(label_w - 8, y + 19, _short(f"{s.index}: {s.name}", 34), "end"))
        for j in range(n_cols):
            value = z[i, j]
            tip = f"{s.name} / {data.features[j]}: rank z = {value:+.2f}"
            if data.means is not None:
                tip += f", mean {data.means[i, j]:.4g}"
            x = label_w + cell_w * j
            parts.append(_rect(x, y, cell_w - 2, cell_h - 2, _diverging(value), tip))
            parts.append(_text(x + cell_w / 2, y + 19, f"{value:+.1f}", "middle"))
    return _svg(width, height, parts, "profile heatmap of rank z-scores") + (
        "<p class='note'>Each cell: how far the segment's customers rank above or below everyone, "
        "in standard deviations (the shift between two normal distributions that would give the "
        "same chance that one of the segment beats a customer drawn from everyone); unlike a "
        "z-score of means, a few extreme customers do not wash it out. Red is above the "
        "population, blue below.</p>"
    )


def _ambiguous_chart(data: ReportData) -> str:
    segments = data.segments
    label_w, bar_w, row_h = 240, 420, 28
    height = 16 + row_h * len(segments)
    top = max([s.ambiguous_share or 0.0 for s in segments] + [0.05])
    parts = []
    for row, s in enumerate(segments):
        share = s.ambiguous_share or 0.0
        y = 8 + row * row_h
        parts.append(_text(label_w - 8, y + 15, _short(f"{s.index}: {s.name}", 34), "end"))
        parts.append(_rect(label_w, y + 2, bar_w, 18, "#eeeeee"))
        w = bar_w * share / top
        parts.append(_rect(label_w, y + 2, w, 18, _colour(s.index), f"{s.name}: {share:.1%}"))
        parts.append(_text(label_w + w + 4, y + 15, f"{share:.1%}"))
    return _svg(label_w + bar_w + 70, height, parts, "ambiguous share per segment") + (
        "<p class='note'>Ambiguous: the runner-up segment's centre is nearly as close as the "
        "nearest one (relative margin below the threshold).</p>"
    )


def _k_curves(diag: KDiagnostics) -> str:
    """One small line chart per metric, the recommended k marked."""
    charts = []
    ks = [int(k) for k in diag.k]
    for name, values in diag.metrics.items():
        points = [(k, v) for k, v in zip(ks, values, strict=False) if _finite(v)]
        if not points:
            continue
        w, h, left, bottom = 350, 200, 72, 34
        lo_k, hi_k = min(ks), max(ks)
        lo_v = min(v for _, v in points)
        hi_v = max(v for _, v in points)
        if hi_v == lo_v:
            lo_v, hi_v = lo_v - 1, hi_v + 1

        def sx(k, lo_k=lo_k, hi_k=hi_k, w=w, left=left):
            return left + (w - left - 12) * ((k - lo_k) / (hi_k - lo_k) if hi_k > lo_k else 0.5)

        def sy(v, lo_v=lo_v, hi_v=hi_v, h=h, bottom=bottom):
            return 24 + (h - bottom - 24) * (1 - (v - lo_v) / (hi_v - lo_v))

        parts = [_text(left, 14, name, extra='font-weight="600"')]
        parts.append(f'<line x1="{left}" y1="{h - bottom}" x2="{w - 12}" y2="{h - bottom}" '
                     'stroke="#999"/>')  # fmt: skip
        parts.append(f'<line x1="{left}" y1="24" x2="{left}" y2="{h - bottom}" stroke="#999"/>')
        parts.extend(_text(left - 4, sy(v) + 4, _number(v), "end") for v in (lo_v, hi_v))
        parts.extend(_text(sx(k), h - bottom + 16, str(k), "middle") for k in ks)
        parts.append(_text((left + w) / 2, h - 4, "k", "middle"))
        if diag.recommended is not None and lo_k <= diag.recommended <= hi_k:
            x = sx(diag.recommended)
            parts.append(f'<line x1="{x:.1f}" y1="24" x2="{x:.1f}" y2="{h - bottom}" '
                         'stroke="#e15759" stroke-dasharray="4 3"/>')  # fmt: skip
        path = " ".join(f"{sx(k):.1f},{sy(v):.1f}" for k, v in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#4e79a7" stroke-width="2"/>')
        for k, v in points:
            parts.append(f'<circle cx="{sx(k):.1f}" cy="{sy(v):.1f}" r="3" fill="#4e79a7">'
                         f"<title>k={k}: {name} = {v:.6g}</title></circle>")  # fmt: skip
        charts.append(_svg(w, h, parts, f"{name} by k"))
    note = ""
    if diag.recommended is not None:
        note = (f"<p>Recommended k = <b>{diag.recommended}</b>"
                f"{': ' + html.escape(diag.reason) if diag.reason else ''} "
                "(dashed line).</p>")  # fmt: skip
    grid = "<div style='display:flex;flex-wrap:wrap;gap:1rem'>" + "".join(charts) + "</div>"
    return note + grid


def _scatter(data: ReportData) -> str:
    points = np.asarray(data.projection, dtype=np.float64)
    labels = np.asarray(data.projection_labels, dtype=np.int64)
    w, h, pad = 760, 520, 30
    lo, hi = np.percentile(points, 0.5, axis=0), np.percentile(points, 99.5, axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    scaled = (np.clip(points, lo, hi) - lo) / span
    xs = pad + scaled[:, 0] * (w - 2 * pad - 180)
    ys = h - pad - scaled[:, 1] * (h - 2 * pad)
    index_of = {s.index: s for s in data.segments}
    parts = [_rect(pad - 6, pad - 6, w - 2 * pad - 168, h - 2 * pad + 12, "#fafafa",
                   extra='stroke="#ddd"')]  # fmt: skip
    for x, y, label in zip(xs, ys, labels, strict=True):
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.2" fill="{_colour(int(label))}" '
                     'fill-opacity="0.6"/>')  # fmt: skip
    for row, s in enumerate(index_of.values()):
        y = pad + 10 + row * 20
        parts.append(_rect(w - 170, y - 10, 12, 12, _colour(s.index)))
        parts.append(_text(w - 152, y, _short(f"{s.index}: {s.name}", 22)))
    parts.append(_text(pad, h - 8, "first principal component"))
    return _svg(w, h, parts, "2-D projection coloured by segment") + (
        f"<p class='note'>{html.escape(data.projection_note)}</p>" if data.projection_note else ""
    )


def _rfm_grid(grid: np.ndarray) -> str:
    cell, left, top = 78, 70, 30
    total = max(float(grid.sum()), 1.0)
    peak = max(float(grid.max()), 1.0)
    parts = [_text(left + cell * 2.5, 18, "FM score", "middle", 'font-weight="600"')]
    parts.extend(
        _text(left + cell * (j + 0.5), top + 5 * cell + 16, str(j + 1), "middle") for j in range(5)
    )
    for i in range(5):
        r = 5 - i  # R = 5 (most recent) on top
        y = top + i * cell
        parts.append(_text(left - 10, y + cell / 2 + 4, f"R={r}", "end"))
        for j in range(5):
            count = float(grid[r - 1, j])
            shade = int(245 - 170 * (count / peak))
            fill = f"rgb({shade},{min(255, shade + 12)},255)"
            tip = f"R={r}, FM={j + 1}: {int(count):,} customers"
            parts.append(_rect(left + j * cell, y, cell - 2, cell - 2, fill, tip))
            parts.append(_text(left + j * cell + cell / 2, y + cell / 2 + 4,
                               f"{count / total:.1%}", "middle"))  # fmt: skip
    return _svg(left + 5 * cell + 20, top + 5 * cell + 30, parts, "RFM grid") + (
        "<p class='note'>Share of customers in each cell of recency score R (5: most recent) "
        "against FM, the mean of the frequency and monetary scores.</p>"
    )


def _migration(data: ReportData) -> str:
    matrix = np.asarray(data.migration, dtype=np.float64)
    rows, cols = data.migration_labels
    cell_w, cell_h, left, top = 74, 30, 220, 110
    peak = max(float(matrix.max()), 1.0)
    parts = [_text(left, 14, "current segment (columns) by previous segment (rows)",
                   extra='font-weight="600"')]  # fmt: skip
    for j, name in enumerate(cols):
        x = left + cell_w * (j + 0.5)
        parts.append(_text(x, top - 8, _short(name, 18), "start",
                           f'transform="rotate(-40 {x:.1f} {top - 8})"'))  # fmt: skip
    for i, name in enumerate(rows):
        y = top + i * cell_h
        parts.append(_text(left - 8, y + 19, _short(name, 30), "end"))
        row_total = max(float(matrix[i].sum()), 1.0)
        for j in range(matrix.shape[1]):
            count = matrix[i, j]
            shade = int(245 - 180 * (count / peak))
            same = f"rgb(255,{shade},{max(0, shade - 30)})"
            fill = same if i == j else f"rgb({shade},{shade},255)"
            tip = f"{name} -> {cols[j]}: {int(count):,} customers ({count / row_total:.1%} of row)"
            parts.append(_rect(left + j * cell_w, y, cell_w - 2, cell_h - 2, fill, tip))
            parts.append(_text(left + j * cell_w + cell_w / 2, y + 19,
                               f"{count / row_total:.0%}", "middle"))  # fmt: skip
    width = left + cell_w * matrix.shape[1] + 20
    return _svg(width, top + cell_h * matrix.shape[0] + 10, parts, "migration matrix") + (
        "<p class='note'>Each row: where the customers of a previous segment are now, as a share "
        "of the row.</p>"
    )


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _finite(value) -> bool:
    return value is not None and math.isfinite(float(value))


def _number(value: float) -> str:
    if abs(value) < 1e4:
        return f"{value:.3g}"
    return f"{value:.2g}".replace("e+0", "e").replace("e+", "e")
