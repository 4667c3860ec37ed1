"""Crash safety (issue 9): a real quick audit killed with SIGKILL at many moments, across generation,
embedding and analysis, and resumed each time with the same command, ends with tables
byte-identical to the uninterrupted ``quick_run`` fixture, leaves no temp files, and a last re-run
has nothing to do.

The kill moments are events, not clock times: each killed run goes through ``tests/_kill_at.py``,
which SIGKILLs the audit just before or just after the N-th rename of a named file (every write is
temp + rename, so these points reach every state a crash can leave on disk). The same command
therefore dies at the same point however busy the machine is, and each kill must land in the stage
the plan says (read from the log: the last stage that started and had not finished).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KILL_AT = ROOT / "tests" / "_kill_at.py"

#: at least this many kills must land in each phase (the issue asks for >= 10 in all)
MIN_LANDED = {"generate": 3, "embed": 3, "analysis": 2}
MIN_KILLS = 10
#: the planned kills, in the order the audit reaches them: (rename target pattern, N-th match in the
#: killed process, before/after the rename, the stage the kill must land in). Each resumed run redoes
#: the stage it was killed in, so every later point is still ahead of it.
PLAN = [
    (r"/images/[^/]+\.png$", 1, "before", "generate"),      # every face rendered, none written yet
    (r"/images/[^/]+\.png$", 400, "before", "generate"),    # half the images in place, the next one a temp file
    (r"/\.partial/chunk0000\.json$", 1, "before", "generate"),  # the chunk's rows written, its metadata not
    (r"/faces\.parquet$", 1, "after", "generate"),          # faces table in place, the stage record not
    (r"/embeddings/dlib/.*/shard-[^/]+\.npz$", 1, "before", "embed:dlib"),
    (r"/embeddings/dlib/.*/shard-[^/]+\.npz$", 6, "after", "embed:dlib"),
    (r"/embeddings/dlib\.parquet$", 1, "after", "embed:dlib"),
    (r"/embeddings/sface/.*/shard-[^/]+\.npz$", 5, "after", "embed:sface"),
    (r"/embeddings/sface\.parquet$", 1, "before", "embed:sface"),
    (r"/scores/sface\.parquet$", 1, "after", "score:sface"),
    (r"/results/manipulation_check\.parquet$", 1, "before", "manipulation"),
    (r"/results/contrasts\.parquet$", 1, "after", "analyze"),
    (r"/report\.html$", 1, "before", "report"),
]

STAGE_LINE = re.compile(r"faceaudit (\S+): (running|done in)")
TABLES = ["faces.parquet", "pairs.parquet", "embeddings/*.parquet", "scores/*.parquet", "results/*.parquet"]


def _phase(stage: str | None) -> str:
    if stage in (None, "finished"):
        return str(stage)
    if stage == "generate":
        return "generate"
    if stage.startswith("embed:"):
        return "embed"
    return "analysis"  # pairs, score:*, manipulation, analyze, report


def _command(run: Path, *extra: str, script: list[str] | None = None) -> list[str]:
    return [sys.executable, *(script or ["-m", "faceaudit.cli"]), "audit", str(ROOT / "protocols" / "quick.yaml"),
            "--out", str(run), "--no-progress", *extra]


def _killed_run(run: Path, env: dict, pattern: str, n: int, when: str) -> tuple[str | None, list[str]]:
    """Run the audit until it kills itself at the N-th rename matching ``pattern``. Returns the stage that
    was running at the kill (None: between stages; "finished": the audit ended without reaching the point)
    and the log."""
    # its own process group, so the kill also takes any measuring workers (as a machine crash would)
    proc = subprocess.run(_command(run, script=[str(KILL_AT)]), cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, start_new_session=True, timeout=600,
                          env={**env, "FACEAUDIT_TEST_KILL": f"{pattern};{n};{when}"})
    log = proc.stderr.splitlines()
    if proc.returncode == 0:
        return "finished", log
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, "\n".join(log))
    current = None
    for m in filter(None, map(STAGE_LINE.search, log)):
        current = m.group(1) if m.group(2) == "running" else None
    return current, log


@pytest.mark.slow
def test_sigkill_at_many_moments_then_resume_gives_identical_tables(quick_run, tmp_path):
    ref = Path(quick_run)
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FACEAUDIT_CACHE": str(tmp_path / "cache-killed")}

    landed: Counter = Counter()
    kills, started = [], []
    t0 = time.monotonic()
    for pattern, n, when, expected in PLAN:
        stage, log = _killed_run(run, env, pattern, n, when)
        kills.append((pattern, n, when, stage))
        assert stage == expected, f"kill {when} rename {n} of {pattern} landed in {stage}, not {expected}:\n" + \
            "\n".join(log)
        landed[_phase(stage)] += 1
        # a kill never damages a finished stage's outputs (atomic writes; the record is dropped first),
        # so no resume may find a recorded output that changed
        assert not [line for line in log if "redoing it" in line], "\n".join(log)
        started.append([m.group(1) for m in map(STAGE_LINE.search, log) if m and m.group(2) == "running"])
    seconds_killed = time.monotonic() - t0
    print(f"\nkills (pattern, n, before/after, landed in stage): {kills}\nlanded per phase: {dict(landed)}; "
          f"{seconds_killed:.0f} s of killed runs\nstages started by each killed run: {started}")
    assert len(kills) >= MIN_KILLS
    for phase, n in MIN_LANDED.items():
        assert landed[phase] >= n, f"only {landed[phase]} kills landed in {phase}: {kills}"

    # the same command, left alone, finishes the audit
    cmd = _command(run)
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr

    for pattern in TABLES:
        ours = sorted(p.relative_to(run) for p in run.glob(pattern))
        theirs = sorted(p.relative_to(ref) for p in ref.glob(pattern))
        assert ours == theirs and ours, (pattern, ours, theirs)
        for rel in ours:
            assert (run / rel).read_bytes() == (ref / rel).read_bytes(), f"{rel} differs from the uninterrupted run"
    assert sorted(p.name for p in (run / "images").iterdir()) == sorted(p.name for p in (ref / "images").iterdir())
    assert (run / "report.html").is_file()

    stray = [str(p.relative_to(run)) for p in run.rglob(".*.tmp")]
    assert stray == [], f"temp files left behind: {stray}"
    assert not (run / ".partial").exists()

    # nothing left to do
    again = subprocess.run(_command(run, "--json"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["ran"] == []


def test_audit_start_removes_temp_files_of_killed_writes(quick_run, tmp_path):
    """A write killed between its temp file and the rename leaves ``.NAME.XXXX.tmp``; the next audit
    of that run removes them and still finds every finished stage up to date."""
    import shutil

    from faceaudit import pipeline

    run = Path(shutil.copytree(quick_run, tmp_path / "run"))
    planted = [run / ".faces.parquet.k1l2d3.tmp", run / "images" / ".s0000_light.png.x9y8z7.tmp",
               run / "results" / ".summary.json.abc123.tmp", run / ".partial" / ".chunk0000.parquet.q1w2e3.tmp"]
    for p in planted:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"half a table")
    keep = run / "results" / "notes.tmp"  # not an atomic_path temp name: left alone
    keep.write_bytes(b"mine")

    ctx = pipeline.audit(ROOT / "protocols" / "quick.yaml", run, progress=False)
    assert ctx.ran == []
    assert [p for p in planted if p.exists()] == []
    assert keep.read_bytes() == b"mine"


def test_generate_killed_before_its_record_resumes_from_rendered_chunks(tmp_path, monkeypatch):
    """The last moment of the generate stage (every chunk rendered, faces.parquet maybe written, the
    manifest record not yet): the re-run reuses the chunks instead of rendering them all again."""
    from faceaudit import pipeline
    from faceaudit.protocol import parse_protocol
    from faceaudit.rundir import RunDir

    proto = parse_protocol({"name": "tiny", "seed": 3, "n_seeds": 2, "models": ["dlib"],
                            "edits": [{"attribute": "lighting", "levels": [-1, 1]}]})
    real_mark = RunDir.mark_stage

    def die_before_generate_record(self, stage, *args, **kwargs):
        if stage == "generate":
            raise KeyboardInterrupt  # stands for SIGKILL: nothing after this point runs
        return real_mark(self, stage, *args, **kwargs)

    monkeypatch.setattr(RunDir, "mark_stage", die_before_generate_record)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        pipeline.audit(proto, run, progress=False)
    first = (run / "faces.parquet").read_bytes()
    monkeypatch.setattr(RunDir, "mark_stage", real_mark)

    ctx = pipeline.StageContext(run=pipeline.init_run(proto, run), protocol=proto, progress=False)
    pipeline.stage_generate(ctx)
    assert ctx.ran == ["generate"]
    assert json.loads((run / "results" / "generation.json").read_text())["chunks_resumed"] == 1
    assert (run / "faces.parquet").read_bytes() == first
    assert not (run / ".partial").exists()


def test_embedding_cache_removes_only_old_temp_files_of_killed_writes(tmp_path):
    """A shard write killed mid-way leaves its temp file in the shared cache; loading the cache removes
    those older than an hour and keeps younger ones (another process may be writing them now)."""
    import numpy as np

    from faceaudit.harness.cache import STALE_TEMP_SECONDS, EmbeddingCache

    cache = EmbeddingCache(tmp_path, "dlib", "v1")
    cache.put(["a" * 64], ["ok"], np.ones((1, 4), dtype=np.float32))
    old, young = cache.dir / ".shard-0123.npz.k1l2.tmp", cache.dir / ".shard-4567.npz.m3n4.tmp"
    for p in (old, young):
        p.write_bytes(b"half a shard")
    hours_ago = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(old, (hours_ago, hours_ago))

    again = EmbeddingCache(tmp_path, "dlib", "v1").load()
    assert not old.exists() and young.exists()
    assert again.get("a" * 64)[0] == "ok"
