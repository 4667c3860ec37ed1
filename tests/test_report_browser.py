"""The model card in a real browser: headless Chromium with the network blocked.

One Chromium run loads report.html and writes the rendered DOM, a screenshot and a NetLog (every
URL request the browser made). Chromium's own background traffic (update checks, account probes)
is started by the browser process and logged with initiator "not an origin"; anything the *page*
asks for carries the page's origin ("null" for file://). A control page that does load a remote
image proves the check can see such a request.

Needs the Debian package ``chromium`` (``make browser``); fails without it (tests/_promised.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceaudit.report import render_report

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium not installed (make browser)")

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
    # block the network twice over: no name resolves, and every connection goes to a dead proxy
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
]
#: schemes a self-contained page may load (everything else would need the network)
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "chrome-error:")


def run_chromium(url: str, workdir: Path, screenshot: bool = False, budget_ms: int = 4000) -> tuple[str, list[dict], Path | None]:
    """Load ``url``; returns (rendered DOM, page-initiated URL requests, screenshot path or None)."""
    netlog = workdir / "netlog.json"
    shot = workdir / "shot.png"
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={workdir / 'profile'}", f"--log-net-log={netlog}",
           f"--virtual-time-budget={budget_ms}", "--dump-dom"]
    if screenshot:
        cmd += ["--window-size=1400,4000", f"--screenshot={shot}"]
    proc = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=120, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, page_requests(netlog), (shot if screenshot else None)


def page_requests(netlog: Path) -> list[dict]:
    """URL requests started on behalf of a web page (not by the browser itself)."""
    raw = netlog.read_text()
    try:
        log = json.loads(raw)
    except json.JSONDecodeError:  # Chromium can exit before closing the event list
        log = json.loads(raw.rstrip().rstrip(",") + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    out = []
    for ev in log["events"]:
        params = ev.get("params") or {}
        if ev["type"] != start_job or "url" not in params:
            continue
        if params.get("initiator") == "not an origin":  # browser-internal traffic
            continue
        if not params["url"].startswith(LOCAL_SCHEMES):
            out.append({"url": params["url"], "initiator": params.get("initiator")})
    return out


@pytest.fixture(scope="module", params=["synthetic", "quick_audit"])
def browser_run(request, tmp_path_factory):
    # "quick_audit": the report.html that `faceaudit audit protocols/quick.yaml` wrote (real faces,
    # real models, real statistics); "synthetic": hand-built tables with every optional table.
    work = tmp_path_factory.mktemp("chromium")
    if request.param == "quick_audit":
        root = Path(request.getfixturevalue("quick_run"))
        report = root / "report.html"
        assert report.exists(), "the audit did not write report.html"
    else:
        root = Path(shutil.copytree(request.getfixturevalue("synthetic_run_template"), work / "run"))
        report = render_report(root)
    html = report.read_text(encoding="utf-8")
    dom, requests, shot = run_chromium(report.as_uri(), work, screenshot=True)
    return html, dom, requests, shot


def test_network_check_sees_a_page_request(tmp_path):
    page = tmp_path / "control.html"
    page.write_text('<html><body><img src="https://example.invalid/face.png"><p>control</p></body></html>')
    dom, requests, _ = run_chromium(page.as_uri(), tmp_path, budget_ms=1000)
    assert "control" in dom
    assert [r["url"] for r in requests] == ["https://example.invalid/face.png"]


def test_report_makes_no_network_request(browser_run):
    _, _, requests, _ = browser_run
    assert requests == []


def test_every_plotly_figure_rendered(browser_run, request):
    html, dom, _, _ = browser_run
    expected = len(re.findall(r'<div class="fa-plot"', html))
    # 7 per model (two models): DET, scores, FNMR by condition, dose, primary and within-condition
    # forests, DET curves with bootstrap bands; the quick audit adds each model's cross-group FMR heatmap
    # (results/fmr_matrix.parquet), which the hand-built synthetic run, without embeddings, cannot have
    variant = request.node.callspec.params["browser_run"]
    assert expected == {"quick_audit": 16, "synthetic": 14}[variant]
    assert ("Cross-group impostor FMR" in html) == (variant == "quick_audit")
    plotted = re.findall(r'<div class="fa-plot js-plotly-plot"[^>]*>\s*<div class="plot-container', dom)
    assert len(plotted) == expected
    # each figure drew its traces into SVG (a failed newPlot leaves an empty div)
    assert dom.count('class="main-svg"') >= 2 * expected
    assert "scatterlayer" in dom


def test_screenshot_is_not_blank(browser_run):
    _, _, _, shot = browser_run
    with Image.open(shot) as im:
        img = im.convert("RGB")
    assert img.size == (1400, 4000)
    counts = [n for n, _ in img.getcolors(maxcolors=1 << 24)]
    assert len(counts) > 500, "screenshot has almost no distinct colours"
    assert max(counts) / sum(counts) < 0.9, "screenshot is (nearly) one colour: nothing rendered"
    # the dark header band is at the top: the CSS was applied
    assert np.asarray(img.crop((0, 0, 1400, 40))).mean() < 80
