"""The model card names weights and directions files by package, version and hash; machine paths
stay in manifest.json."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from faceaudit.generate.dcgan.directions import default_directions_path
from faceaudit.report import render_report
from faceaudit.report.provenance import describe_file, redact_paths


def test_installed_files_become_package_version_and_hash():
    import faceaudit

    path = default_directions_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    text = describe_file(path)
    assert text.startswith(f"faceaudit {faceaudit.__version__} · faceaudit/data/{path.name}")
    assert digest[:16] in text and str(path.parent) not in text
    # a site-packages file of another machine: package and file, no version claimed, no path
    other = "/home/someone/.venv/lib/python3.11/site-packages/gan_face_generate/weights.tar"
    red = redact_paths(f"weights at {other}")
    assert "/home/someone" not in red and "gan_face_generate/weights.tar" in red and "sha256 not recorded" in red
    # URLs, ratios and division signs are not paths
    for keep in ("https://github.com/opencv/opencv_zoo/tree/main", "multiplies by 1/128", "(x - [127.5]) / [128.0]"):
        assert redact_paths(keep) == keep


def test_card_has_no_absolute_paths_but_manifest_keeps_them(tmp_path, synthetic_run_template):
    root = Path(shutil.copytree(synthetic_run_template, tmp_path / "run"))
    secret = "/srv/auditor-7/venv/lib/python3.11/site-packages/face_recognition_models/models/resnet.dat"
    manifest = json.loads((root / "manifest.json").read_text())
    model = next(iter(manifest["models"]))
    manifest["models"][model]["weights"] = secret
    manifest["models"][model]["architecture"] = "A" * 300  # a long value must wrap, not widen the card
    (root / "manifest.json").write_text(json.dumps(manifest))
    gen_path = root / "results" / "generation.json"
    gen = json.loads(gen_path.read_text()) if gen_path.exists() else {}
    gen["directions"] = {"path": "/srv/auditor-7/faceaudit/data/directions_dcgan_v2.json", "sha256": "ab" * 32}
    gen_path.write_text(json.dumps(gen))
    page = render_report(root).read_text(encoding="utf-8")
    assert "/srv/auditor-7" not in page
    assert "face_recognition_models/models/resnet.dat" in page and "directions_dcgan_v2.json · sha256 abababab" in page
    assert secret in (root / "manifest.json").read_text()

    # in a real browser, no Model details table is wider than its column (nothing cut off)
    from test_report_browser import CHROMIUM, run_chromium

    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium not installed (make browser)")
    probe = """<script>window.addEventListener('load', () => {
      const out = [...document.querySelectorAll('.models table.kv')].map(
        t => [t.scrollWidth, t.closest('.table-wrap').clientWidth, t.closest('.models > div').clientWidth]);
      const pre = document.createElement('pre'); pre.id = 'kv-widths'; pre.textContent = JSON.stringify(out);
      document.body.appendChild(pre); });</script>"""
    probed = tmp_path / "probe.html"
    probed.write_text(page.replace("</body>", probe + "</body>"), encoding="utf-8")
    (tmp_path / "chromium").mkdir()
    dom, _, _ = run_chromium(probed.as_uri(), tmp_path / "chromium")
    import re

    widths = json.loads(re.search(r'<pre id="kv-widths">(.*?)</pre>', dom).group(1))
    assert widths, "no Model details tables found"
    for table_w, wrap_w, column_w in widths:
        assert table_w <= wrap_w + 1 and wrap_w <= column_w + 1, widths


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
