"""The generator backends faceaudit knows, and which one a run uses (``faceaudit generators``).

Each backend (faceaudit.generate.backend.GeneratorBackend) lives in its own module and is
imported only when asked for; readiness is checked without loading any weights. The pipeline
and the report call :func:`backend_for` and never test a generator's name themselves.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import pandas as pd

from faceaudit.core.errors import BadInput

if TYPE_CHECKING:
    from faceaudit.generate.backend import GeneratorBackend
    from faceaudit.protocol import Protocol

#: name -> (module, class, listed by ``faceaudit generators``)
BACKENDS: dict[str, tuple[str, str, bool]] = {
    "dcgan": ("faceaudit.generate.dcgan.backend", "DCGANBackend", True),
    "diffusion": ("faceaudit.generate.diffusion.backend", "DiffusionBackend", True),
    "imported": ("faceaudit.generate.imported", "ImportedBackend", False),
}


def get_backend(name: str) -> "GeneratorBackend":
    """The backend called ``name``.

    Parameters
    ----------
    name : str
        ``dcgan``, ``diffusion`` or ``imported``.

    Returns
    -------
    GeneratorBackend

    Examples
    --------
    >>> get_backend("diffusion").name
    'diffusion'
    """
    try:
        module, cls, _ = BACKENDS[name]
    except KeyError:
        raise BadInput(f"generator.name: unknown generator {name!r} (have {sorted(BACKENDS)})") from None
    return getattr(importlib.import_module(module), cls)()


def backend_for(protocol: "Protocol") -> "GeneratorBackend":
    """The backend of a run: ``imported`` when its protocol has a dataset block, else its generator's.

    Examples
    --------
    >>> from faceaudit.protocol import load_protocol
    >>> backend_for(load_protocol("protocols/quick.yaml")).name
    'dcgan'
    """
    return get_backend("imported" if protocol.dataset is not None else protocol.generator.name)


def list_generators() -> pd.DataFrame:
    """``name, ready, description, detail`` for every generator backend.

    Examples
    --------
    >>> list(list_generators()["name"])
    ['dcgan', 'diffusion']
    """
    rows = []
    for name, (_, _, listed) in BACKENDS.items():
        if listed:
            backend = get_backend(name)
            rows.append({"name": name, "description": backend.description, **backend.readiness()})
    return pd.DataFrame(rows, columns=["name", "ready", "description", "detail"])
