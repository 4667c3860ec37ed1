"""Stage orchestration over one run directory.

Each stage has an *inputs hash* (protocol section + upstream table hashes + code/model versions) and
records the sha256 of every output it wrote. A stage is up to date only when its inputs hash matches
the manifest *and* every output still has the recorded sha256 (the generate stage also checks every
image against ``faces.parquet``); otherwise it is redone. Downstream stages hash their upstream
outputs, so a redone stage that writes different bytes invalidates everything after it, and one that
writes the same bytes invalidates nothing. ``report.html`` is removed whenever any stage runs, so a
run directory never holds a report that does not match its tables.

Models are resolved lazily (:class:`ModelHandle`): a re-run whose stages are all up to date loads no
model, because each model's name, version and metadata were recorded the first time under a
fingerprint of its spec and the installed library versions.

One module per job: ``models`` (handles, fingerprints, name/availability checks), ``context`` (what
the stages share and the up-to-date rule), ``runs`` (new and existing run directories), ``stages``
(the seven stages), ``audit`` (all of them in order), ``console`` (log lines).
"""

from faceaudit.pipeline.audit import audit
from faceaudit.pipeline.context import STAGES, StageContext, run_stage
from faceaudit.pipeline.models import (
                                       ModelHandle,
                                       check_model_names,
                                       check_models_available,
                                       check_protocol_models,
                                       library_versions,
                                       model_fingerprint,
                                       model_handles,
                                       set_aside_other_models,
)
from faceaudit.pipeline.runs import init_run, open_run, require_verified
from faceaudit.pipeline.stages import (
                                       ANALYZE_OUTPUTS,
                                       design_inputs,
                                       model_factory,
                                       stage_analyze,
                                       stage_embed,
                                       resolve_policy,
                                       stage_gate,
                                       stage_generate,
                                       stage_manipulation,
                                       stage_pairs,
                                       stage_report,
                                       stage_score,
)

__all__ = [
    "audit", "STAGES", "StageContext", "run_stage", "ModelHandle", "check_model_names", "check_models_available",
    "check_protocol_models", "library_versions", "model_fingerprint", "model_handles", "set_aside_other_models",
    "init_run", "open_run", "require_verified", "ANALYZE_OUTPUTS", "design_inputs", "model_factory",
    "stage_analyze", "stage_embed", "stage_gate", "resolve_policy", "stage_generate", "stage_manipulation", "stage_pairs", "stage_report",
    "stage_score",
]
