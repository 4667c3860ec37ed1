"""The generator backend interface: what the pipeline and the report ask of a backend.

A backend is one way of getting a run's faces: a generator (``dcgan``, ``diffusion``) or, for an
imported dataset, none (``imported``). The pipeline and the report never test a generator's name;
they ask the registry (:func:`faceaudit.generate.registry.backend_for`) for the run's backend and
call these methods:

- :meth:`GeneratorBackend.check_protocol`: fail fast, in one line, on a protocol the backend cannot
  render (a missing prompt phrase), before anything heavy loads;
- :meth:`GeneratorBackend.design_inputs`: everything that determines the rendered faces (the
  generate stage's inputs hash), e.g. the directions file's or the model folder's content;
- :meth:`GeneratorBackend.generate`: the generate stage itself (faces table, ``images/``,
  ``results/generation.json``), chunked and resumable through :mod:`faceaudit.generate.chunks`;
- :meth:`GeneratorBackend.card_rows`: the backend's own rows of the model card's evaluation table.

Backend modules import their generators lazily (torch, diffusers): asking for a backend, its
readiness, design inputs or card rows loads no model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from faceaudit.protocol import Protocol


class GeneratorBackend(ABC):
    """One way of producing a run's faces (see the module docstring).

    Examples
    --------
    >>> from faceaudit.generate.registry import get_backend
    >>> backend = get_backend("dcgan")
    >>> backend.name, isinstance(backend, GeneratorBackend)
    ('dcgan', True)
    """

    #: the ``generator.name`` of a protocol (``imported`` for an imported dataset)
    name: str = "base"
    #: one line for ``faceaudit generators``
    description: str = ""
    #: what the model card says when the run recorded no directions file
    directions_note: str = "none"

    def readiness(self) -> dict[str, Any]:
        """``{"ready": bool, "detail": str}``: whether it can run here, checked without loading weights."""
        return {"ready": True, "detail": ""}

    def check_protocol(self, protocol: "Protocol") -> None:
        """Raise a one-line :class:`~faceaudit.core.errors.BadInput` for a protocol this backend cannot
        render; called before the design inputs are hashed and before any model loads."""

    @abstractmethod
    def design_inputs(self, protocol: "Protocol") -> dict[str, Any]:
        """Everything that determines the rendered faces, as JSON-serialisable data (hashed into the
        generate stage's inputs); resolving files here makes a missing one fail before the stage."""

    @abstractmethod
    def generate(self, protocol: "Protocol", run_root: str | Path, *, progress: bool = True,
                 keep_partial: bool = False, executor: Any = None) -> "pd.DataFrame":
        """Render and measure the design into ``run_root`` (``images/``, ``results/generation.json``)
        and return the faces table; the caller writes ``faces.parquet``. ``keep_partial`` and
        ``executor``: :func:`faceaudit.generate.chunks.run_chunks`."""

    def card_rows(self, protocol: "Protocol") -> list[tuple[str, str]]:
        """``(label, value)`` rows of the model card's evaluation table that only this backend has."""
        return []


def protected_dump(protocol: "Protocol") -> Any:
    """The protocol's protected attributes as design-input data: one attribute dumps as it always
    did, so a skin-only run keeps its stage hashes; several dump as a list."""
    p = protocol.protected
    return p.model_dump() if not isinstance(p, list) else [x.model_dump() for x in p]
