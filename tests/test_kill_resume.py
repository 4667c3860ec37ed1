"""Crash safety (issue 9): a real quick audit killed with SIGKILL at many moments, across generation,
embedding and analysis, and resumed each time with the same command, ends with tables
byte-identical to the uninterrupted ``quick_run`` fixture, leaves no temp files, and a last re-run
has nothing to do.

Kill moments are drawn from a seeded RNG: each planned kill waits for its stage's "running" line on
stderr, then sleeps a random fraction of that stage's duration in the uninterrupted run (from its
manifest); when that stage is already up to date (an earlier kill came just after it finished), the
first later stage that runs starts the clock. Where a kill actually landed is read from the log (the
last stage that started and had not finished).
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: at least this many kills must land in each phase (the issue asks for >= 10 in all)
MIN_LANDED = {"generate": 3, "embed": 3, "analysis": 2}
MIN_KILLS = 10
#: stage order of the quick audit, and the planned kills: the stage whose "running" line starts the clock
ORDER = ["generate", "embed:dlib", "embed:sface", "pairs", "score:dlib", "score:sface", "manipulation", "analyze",
         "report"]
#: (one more than the minimum in each phase, and fractions below 0.6: a busy machine's timings drift
#: between the fixture's run and these, and a stage that finished cannot be reached again)
PLAN = (["generate"] * 4 + ["embed:dlib"] * 3 + ["embed:sface"] * 2 + ["manipulation", "analyze", "analyze", "report"])

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


def _command(run: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "faceaudit.cli", "audit", str(ROOT / "protocols" / "quick.yaml"), "--out", str(run),
            "--no-progress", *extra]


def _start(cmd: list[str], env: dict) -> tuple[subprocess.Popen, "queue.Queue[str | None]"]:
    # its own process group, so the kill also takes any measuring workers (as a machine crash would)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    lines: "queue.Queue[str | None]" = queue.Queue()

    def pump() -> None:
        for line in proc.stderr:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def _killed_run(cmd, env, trigger: str, delay: float) -> tuple[str | None, list[str]]:
    """Run ``cmd``; ``delay`` s after the "running" line of ``trigger`` (or of a later stage, when it is
    up to date), SIGKILL it. Returns the stage that was running at the kill (None: between stages;
    "finished": the audit ended first) and the log."""
    proc, lines = _start(cmd, env)
    log: list[str] = []
    current: str | None = None
    deadline = None
    ended = False
    try:
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                line = lines.get(timeout=timeout if timeout is not None else 300)
            except queue.Empty:
                if deadline is None:
                    raise AssertionError("audit printed nothing for 300 s:\n" + "\n".join(log))
                break  # the moment has come
            if line is None:
                ended = True
                break
            log.append(line)
            m = STAGE_LINE.search(line)
            if m:
                stage, what = m.groups()
                current = stage if what == "running" else None
                if what == "running" and deadline is None and ORDER.index(stage) >= ORDER.index(trigger):
                    deadline = time.monotonic() + delay
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if ended:
        assert proc.returncode == 0, "\n".join(log)
        return "finished", log
    # lines the process printed before it died but that the pump had not handed over yet
    while (line := lines.get()) is not None:
        log.append(line)
        m = STAGE_LINE.search(line)
        if m:
            current = m.group(1) if m.group(2) == "running" else None
    return current, log


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_gives_identical_tables(quick_run, tmp_path):
    ref = Path(quick_run)
    durations = {k: v["seconds"] for k, v in json.loads((ref / "manifest.json").read_text())["stages"].items()}
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FACEAUDIT_CACHE": str(tmp_path / "cache-killed")}
    cmd = _command(run)
    rng = random.Random(20261123)

    landed: Counter = Counter()
    kills, started = [], []
    t0 = time.monotonic()
    for trigger in PLAN:
        # a random moment inside the stage (its duration in the uninterrupted run; at least 0.3 s)
        delay = rng.uniform(0.05, 0.6) * max(durations.get(trigger, 1.0), 0.3)
        stage, log = _killed_run(cmd, env, trigger, delay)
        if stage == "finished":
            break  # the audit outran the last moments; the checks below say whether enough landed
        landed[_phase(stage)] += 1
        kills.append((trigger, round(delay, 2), stage))
        # a kill never damages a finished stage's outputs (atomic writes; the record is dropped first),
        # so no resume may find a recorded output that changed
        assert not [line for line in log if "redoing it" in line], "\n".join(log)
        started.append([m.group(1) for m in map(STAGE_LINE.search, log) if m and m.group(2) == "running"])
    seconds_killed = time.monotonic() - t0
    print(f"\nkills (trigger, delay s, landed in stage): {kills}\nlanded per phase: {dict(landed)}; "
          f"{seconds_killed:.0f} s of killed runs\nstages started by each killed run: {started}")
    assert len(kills) >= MIN_KILLS
    for phase, n in MIN_LANDED.items():
        assert landed[phase] >= n, f"only {landed[phase]} kills landed in {phase}: {kills}"

    # the same command, left alone, finishes the audit
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
