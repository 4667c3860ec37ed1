"""Issue 9's two defects: a run whose embeddings lack the ``embedding`` column, and the progress rate."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from faceaudit.core.progress import ProgressReporter

ROOT = Path(__file__).resolve().parents[1]


def test_analyze_without_embedding_column_is_one_line_bad_input(synthetic_run):
    run = Path(synthetic_run)
    path = run / "embeddings" / "alpha.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop(["embedding"]), path)
    # the fixture's models (alpha, beta) are not in the registry, and the CLI loads the protocol with
    # model checks; name registered models there (the stages use the models recorded in the manifest)
    proto = run / "protocol.yaml"
    proto.write_text(proto.read_text().replace("- alpha\n- beta\n", "- dlib\n- sface\n"))
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "faceaudit.cli", "analyze", str(run)], capture_output=True, text=True,
                          env=env, cwd=run)
    assert proc.returncode == 2, proc.stderr
    # stage log lines ("faceaudit manipulation: running") go to stderr too; the error is one line
    errors = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("faceaudit ")]
    assert len(errors) == 1, proc.stderr
    assert "embeddings/alpha.parquet" in errors[0] and "'embedding'" in errors[0]
    assert "Traceback" not in proc.stderr and "KeyError" not in proc.stderr
    # nothing half-written that looks complete
    assert not (run / "results" / "manipulation_check.parquet").exists() or \
        (run / "results" / "manipulation_check.parquet").stat().st_mtime < path.stat().st_mtime


def test_progress_rate_counts_only_worked_items():
    stream = io.StringIO()
    with ProgressReporter("embed x", 1000, stream=stream) as bar:
        bar.advance(900, cached=True)  # cache hits: no work, arrive instantly
        for _ in range(10):
            time.sleep(0.01)
            bar.advance(10)
    lines = stream.getvalue().splitlines()
    first = lines[0]
    assert first.startswith("embed x: 900/1000 (90%), 900 cached")
    assert "rate n/a" in first  # nothing was worked on yet: no rate, certainly not 900 items / microseconds
    # 100 items in ~0.1 s: the last line's rate is about 1000/s, far below the items-per-elapsed of the cached ones
    rate = float(lines[-1].rsplit(", ", 1)[1].removesuffix("/s"))
    assert 100 < rate < 1100, lines[-1]
