"""Issue 9's two defects: a run whose embeddings lack the ``embedding`` column, and the progress rate."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
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
    before = _digests(run)
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "faceaudit.cli", "analyze", str(run)], capture_output=True, text=True,
                          env=env, cwd=run)
    assert proc.returncode == 2, proc.stderr
    # stage log lines ("faceaudit manipulation: running") go to stderr too; the error is one line
    errors = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("faceaudit ")]
    assert len(errors) == 1, proc.stderr
    assert "embeddings/alpha.parquet" in errors[0] and "'embedding'" in errors[0]
    assert "Traceback" not in proc.stderr and "KeyError" not in proc.stderr
    # nothing half-written that looks complete: the failed command changed no file of the run
    # (results/manipulation_check.parquet and the other tables are the fixture's, byte for byte)
    assert (run / "results" / "manipulation_check.parquet").is_file()
    assert _digests(run) == before


def _digests(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file()}


def test_progress_rate_counts_only_worked_items(monkeypatch):
    # The reporter's clock is a fake one that moves only when the test says: the rate is exact, however
    # busy the machine is.
    progress_module = sys.modules[ProgressReporter.__module__]
    now = [0]  # hundredths of a second

    class Clock:
        @staticmethod
        def perf_counter() -> float:
            return now[0] / 100

    monkeypatch.setattr(progress_module, "time", Clock)
    stream = io.StringIO()
    with ProgressReporter("embed x", 1000, stream=stream) as bar:
        bar.advance(900, cached=True)  # cache hits: no work, arrive instantly
        for _ in range(10):
            now[0] += 1  # 10 items worked on in 0.01 s
            bar.advance(10)
    # nothing was worked on at the first line: no rate, certainly not 900 items / microseconds; the last
    # line's rate is the 100 worked items in 0.1 s, not the 1000 done items in 0.1 s
    assert stream.getvalue().splitlines() == ["embed x: 900/1000 (90%), 900 cached, rate n/a",
                                              "embed x: 1000/1000 (100%), 900 cached, 1000.0/s"]
