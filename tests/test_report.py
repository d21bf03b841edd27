"""The HTML report: self-contained, every chart drawn, rendered by a real headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from gpuseg.report import KDiagnostics, ReportData, Segment, project_2d, render_report, write_report

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def full_report() -> ReportData:
    """A report with every optional part, on fresh random but asymmetric data."""
    rng = np.random.default_rng(0)
    k, features = 5, ["recency_days", "frequency", "monetary_total", "tenure_days", "n_channels"]
    sizes = rng.integers(100, 5000, k)
    segments = [
        Segment(j, f"segment <{j}> & co", int(sizes[j]), float(sizes[j] / sizes.sum()),
                revenue_share=float(rng.dirichlet(np.ones(k))[j]),
                ambiguous_share=float(rng.uniform(0, 0.3)), description="high spend")
        for j in range(k)
    ]  # fmt: skip
    scales = [3, 1, 1, 0.5, 0.2, 0.1, 1]
    X = np.concatenate([rng.normal(j, 0.5, (200, 7)) * scales for j in range(k)])
    points, _ = project_2d(X)
    return ReportData(
        title="test <report>",
        segments=segments,
        facts=[("data", "customers.parquet"), ("segments (k)", str(k))],
        features=features,
        zscores=rng.normal(0, 1.5, (k, len(features))),
        means=rng.lognormal(2, 1, (k, len(features))),
        k_diagnostics=KDiagnostics(
            [2, 3, 4, 5, 6],
            {"inertia": [9.0, 6.0, 4.0, 3.5, 3.2], "silhouette": [0.3, 0.4, None, 0.35, 0.3]},
            recommended=4,
            reason="best score",
        ),
        projection=points,
        projection_labels=np.repeat(np.arange(k), 200),
        projection_note="1,000 rows",
        rfm_grid=rng.integers(0, 500, (5, 5)),
        migration=rng.integers(0, 300, (4, k)),
        migration_labels=([f"old {i}" for i in range(4)], [f"new {j}" for j in range(k)]),
    )


def test_report_is_self_contained_with_every_chart():
    page = render_report(full_report())
    # sizes, heatmap, ambiguous, two k curves, scatter, RFM grid, migration
    assert page.count('<svg class="chart"') == 8
    assert "<title>test &lt;report&gt;</title>" in page
    assert "segment &lt;0&gt; &amp; co" in page
    # Nothing is loaded from elsewhere: no src/href attributes, no URL but the SVG namespace.
    assert not re.search(r"\b(src|href)\s*=", page)
    assert re.findall(r"https?://[^\s\"']+", page) == ["http://www.w3.org/2000/svg"] * 8


def test_optional_parts_are_left_out():
    page = render_report(ReportData("minimal", [Segment(0, "all", 10, 1.0)]))
    assert page.count('<svg class="chart"') == 1
    assert "Migration" not in page and "Choosing k" not in page


def test_write_report_is_atomic(tmp_path):
    target = write_report(tmp_path / "r.html", full_report())
    assert target.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_project_2d_matches_the_leading_principal_components():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4)) * [5.0, 2.0, 0.5, 0.1]
    points, explained = project_2d(X)
    variances = np.var(X - X.mean(axis=0), axis=0)
    assert explained == pytest.approx(np.sort(variances)[::-1][:2] / variances.sum(), rel=0.2)
    assert np.var(points[:, 0]) > np.var(points[:, 1])


def _chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def test_report_renders_in_headless_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; the CI setup must install Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install chromium); CI installs it")
    report = write_report(tmp_path / "report.html", full_report())
    flags = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr", "--v=0",
    ]  # fmt: skip
    url = report.as_uri()
    shot = tmp_path / "report.png"
    screenshot = subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1400,3000", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shot.exists() and shot.stat().st_size > 10_000, screenshot.stderr[-2000:]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    log = screenshot.stderr + dom.stderr
    assert "Uncaught" not in log and "ERROR:CONSOLE" not in log, log[-2000:]
    opening = re.search(r"<html[^>]*>", dom.stdout)
    assert opening, dom.stdout[:500] + dom.stderr[-2000:]
    assert 'data-rendered="ok"' in opening.group(0), opening.group(0)
    assert 'data-charts="8"' in opening.group(0)
