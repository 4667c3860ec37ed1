"""What every stage shares: the run, its protocol, its models, the executor, and the rule that
decides whether a stage is up to date (inputs hash + the sha256 of every output it wrote)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from faceaudit.pipeline.console import log
from faceaudit.pipeline.models import ModelHandle, model_handles
from faceaudit.protocol import Protocol
from faceaudit.rundir import RunDir, Timer

STAGES = ["generate", "embed", "pairs", "score", "manipulation", "analyze", "report"]


@dataclass
class StageContext:
    run: RunDir
    protocol: Protocol
    progress: bool = True
    force: bool = False
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    handles: Optional[list[ModelHandle]] = None
    # where shard work runs (harness.executors); None: in this process. Never part of an inputs
    # hash: the tables do not depend on it, so switching executors redoes nothing.
    executor: Any = None

    def models(self, models: Optional[list] = None) -> list[ModelHandle]:
        if models is not None:
            self.handles = model_handles(self.run, self.protocol, models)
        if self.handles is None:
            self.handles = model_handles(self.run, self.protocol)
        return self.handles


def run_stage(ctx: StageContext, stage: str, inputs_hash: str, outputs: list[str], fn: Callable[[], dict],
               verify: Optional[Callable[[], Optional[str]]] = None) -> None:
    if not ctx.force:
        problem = ctx.run.stage_problem(stage, inputs_hash)
        if problem is None and verify is not None:
            problem = verify()
        if problem is None:
            ctx.skipped.append(stage)
            log(f"{stage}: up to date, skipped")
            return
        if problem not in ("not run yet", "inputs changed"):
            log(f"{stage}: {problem}; redoing it")
    # A stage that runs may change what the report shows; the report is rebuilt at the end.
    if ctx.run.report.exists():
        ctx.run.report.unlink()
    ctx.run.drop_stage(stage)
    log(f"{stage}: running")
    with Timer() as t:
        extra = fn() or {}
    ctx.run.mark_stage(stage, inputs_hash, outputs, t.seconds, **extra)
    ctx.ran.append(stage)
    log(f"{stage}: done in {t.seconds:.1f} s")
