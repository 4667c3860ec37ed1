"""The Python entry points (what notebooks and the CLI call). Every function returns plain
DataFrames / paths and keeps no global state.

    from faceaudit import api
    ctx = api.audit("protocols/quick.yaml", "runs/quick")
    run = api.load_run("runs/quick")
    run.error_rates
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd

from faceaudit import pipeline
from faceaudit.protocol import Protocol, load_protocol

# ---------------------------------------------------------------------------------------------
# Stages (lead). Each re-runs only what is out of date; see faceaudit.pipeline.


def _protocol(protocol: Protocol | str | Path) -> Protocol:
    return protocol if isinstance(protocol, Protocol) else load_protocol(protocol)


def audit(protocol: Protocol | str | Path, out: str | Path, progress: bool = True, force: bool = False,
          report: bool = True, models: Optional[list] = None) -> pipeline.StageContext:
    """Run (or resume) a whole audit into ``out``; returns which stages ran and which were skipped."""
    return pipeline.audit(_protocol(protocol), out, progress=progress, force=force, models=models, report=report)


def generate(protocol: Protocol | str | Path, out: str | Path, progress: bool = True) -> pd.DataFrame:
    """Render the protocol's faces; returns the faces table."""
    run = pipeline.init_run(_protocol(protocol), out)
    return pipeline.stage_generate(pipeline.StageContext(run=run, protocol=_protocol(protocol), progress=progress))


def _ctx(run_root: str | Path, progress: bool = True) -> pipeline.StageContext:
    run, protocol = pipeline.open_run(run_root)
    return pipeline.StageContext(run=run, protocol=protocol, progress=progress)


def embed(run_root: str | Path, progress: bool = True, models: Optional[list] = None) -> dict[str, pd.DataFrame]:
    """Embed the run's faces with each model; returns {model name: embeddings table}."""
    return pipeline.stage_embed(_ctx(run_root, progress), models)


def score(run_root: str | Path, models: Optional[list] = None) -> dict[str, pd.DataFrame]:
    """Build pairs and score them with each model; returns {model name: scores table}."""
    ctx = _ctx(run_root)
    pipeline.stage_pairs(ctx)
    return pipeline.stage_score(ctx, models)


def analyze(run_root: str | Path) -> dict:
    """Manipulation check + statistics; writes RUN/results and returns the result tables."""
    ctx = _ctx(run_root)
    pipeline.stage_manipulation(ctx)
    return pipeline.stage_analyze(ctx)


def report(run_root: str | Path) -> Path:
    """Render RUN/report.html (and results/summary.md); returns the report's path."""
    return pipeline.stage_report(_ctx(run_root))
