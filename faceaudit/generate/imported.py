"""The "no generator" backend of an imported dataset (``faceaudit import``): the faces exist already.

An imported run's faces were written by an importer (faceaudit.importers); there is nothing to
render. Its design inputs are what the importer recorded in the run's protocol (the ``dataset``
block: importer, source, design, attributes, groups, reference), and its model card rows name the
dataset instead of a generator's settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceaudit.core.errors import BadInput
from faceaudit.generate.backend import GeneratorBackend

if TYPE_CHECKING:
    import pandas as pd

    from faceaudit.protocol import Protocol


class ImportedBackend(GeneratorBackend):
    """The backend of a run whose protocol has a ``dataset`` block.

    Examples
    --------
    >>> from faceaudit.protocol import DatasetSpec, load_protocol
    >>> dataset = DatasetSpec(importer="folder", source="/data/faces", design="observational", attributes=["skin"],
    ...                       groups=["skin=light", "skin=dark"], reference="skin=light")
    >>> p = load_protocol("protocols/quick.yaml").model_copy(update={"dataset": dataset})
    >>> ImportedBackend().card_rows(p)
    [('Dataset', 'folder import of /data/faces (observational design)')]
    """

    name = "imported"
    description = "no generator: faces imported from a dataset (faceaudit import causalface|folder)"
    directions_note = "none (imported faces)"

    def design_inputs(self, protocol: "Protocol") -> dict[str, Any]:
        if protocol.dataset is None:
            raise BadInput("protocol: an imported run needs its dataset block (importer, source, design, ...)")
        return {"dataset": protocol.dataset.model_dump()}

    def generate(self, protocol: "Protocol", run_root: str | Path, *, progress: bool = True,
                 keep_partial: bool = False, executor: Any = None) -> "pd.DataFrame":
        from faceaudit.rundir import RunDir

        importer = protocol.dataset.importer if protocol.dataset is not None else "?"
        raise BadInput(f"{RunDir(run_root).protocol}: the faces were imported ({importer}); run `faceaudit import ... "
                       "--audit` or the stage commands (embed, score, analyze, report) instead of generate/audit")

    def card_rows(self, protocol: "Protocol") -> list[tuple[str, str]]:
        d = protocol.dataset
        if d is None:
            return []
        return [("Dataset", f"{d.importer} import of {d.source} ({d.design} design)")]
