"""``audit``: every stage in order over one run directory, resuming what an earlier run left."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from faceaudit.pipeline.context import StageContext
from faceaudit.pipeline.models import check_models_available, check_protocol_models
from faceaudit.pipeline.runs import init_run
from faceaudit.pipeline.stages import (
    stage_analyze,
    stage_embed,
    stage_generate,
    stage_manipulation,
    stage_pairs,
    stage_gate,
    stage_report,
    stage_score,
)
from faceaudit.protocol import Protocol, load_protocol
from faceaudit.rundir import Timer


def audit(protocol: Protocol | str | Path, out: str | Path, progress: bool = True, force: bool = False,
          models: Optional[list] = None, report: bool = True, executor: Any = None,
          policy: Optional[str | Path] = None) -> StageContext:
    """Run every stage that is not up to date; returns what ran and what was skipped. ``executor``
    (harness.executors): where the embed stage's shards run; the tables are the same on any.
    ``policy``: a gate policy file, instead of the protocol's ``analysis.policy``; with either, the
    gate stage writes ``results/gate.json`` before the report (the card colours only against it)."""
    where = "protocol"
    if not isinstance(protocol, Protocol):
        where, protocol = str(protocol), load_protocol(protocol)
    check_protocol_models(protocol, where, models)
    run = init_run(protocol, out)
    ctx = StageContext(run=run, protocol=protocol, progress=progress, force=force, executor=executor)
    run.update_manifest(executor=executor.describe() if executor is not None else {"name": "local", "workers": 1})
    with Timer() as t:
        # Resolve model names before any work: a plugin that cannot be built, or whose name clashes,
        # fails in seconds rather than after rendering. Built-ins are not loaded here.
        check_models_available(ctx.models(models))
        stage_generate(ctx)
        stage_embed(ctx)
        stage_pairs(ctx)
        stage_score(ctx)
        stage_manipulation(ctx)
        stage_analyze(ctx)
        stage_gate(ctx, policy)
        if report:
            stage_report(ctx)
    run.update_manifest(last_audit_seconds=round(t.seconds, 2))
    return ctx
