"""The generator backends faceaudit knows and whether each can run here (``faceaudit generators``).

Readiness is checked without loading any weights: the DCGAN's weights file exists; the diffusion
backend's packages are importable and at least one diffusers pipeline folder is found where
:mod:`faceaudit.generate.diffusion_weights` looks (``$FACEAUDIT_WEIGHTS`` or the Hugging Face cache).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pandas as pd

from faceaudit.core.errors import FaceAuditError


def _dcgan() -> dict:
    from faceaudit.generate.dcgan import weights_path

    try:
        path = weights_path()
    except FaceAuditError as err:
        return {"ready": False, "detail": str(err)}
    if not Path(path).exists():
        return {"ready": False, "detail": f"weights file not found: {path}"}
    return {"ready": True, "detail": f"offline 64x64 DCGAN (weights {path})"}


def local_diffusion_models() -> list[str]:
    """Diffusers pipeline folders found offline: ``$FACEAUDIT_WEIGHTS/<org>/<name>`` and hub caches."""
    from faceaudit.generate.diffusion_weights import WEIGHTS_ENV

    found: list[str] = []
    weights = os.environ.get(WEIGHTS_ENV)
    caches: list[str | None] = [None]
    if weights and Path(weights).is_dir():
        root = Path(weights)
        found += sorted(str(p.parent.relative_to(root)) for p in root.glob("*/*/model_index.json"))
        found += sorted(str(p.parent.relative_to(root)) for p in root.glob("*/model_index.json"))
        caches.insert(0, weights)
    try:
        from huggingface_hub import scan_cache_dir
    except ImportError:
        return found
    for cache in caches:
        try:
            info = scan_cache_dir(cache)
        except Exception:  # no cache directory yet, or an unreadable one: nothing cached there
            continue
        for repo in info.repos:
            if repo.repo_type == "model" and any(f.file_name == "model_index.json" for rev in repo.revisions for f in rev.files):
                found.append(repo.repo_id)
    return sorted(dict.fromkeys(found))


def _diffusion() -> dict:
    missing = [m for m in ("diffusers", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        return {"ready": False, "detail": f"{', '.join(missing)} not installed: pip install 'faceaudit[diffusion]'"}
    import torch

    device = "cuda, fp16" if torch.cuda.is_available() else "cpu only, fp32 (slow for 512 px models)"
    models = local_diffusion_models()
    if not models:
        return {"ready": False, "detail": f"packages installed ({device}); no diffusers model found offline: name a local "
                                          f"folder in generator.model, or place one under $FACEAUDIT_WEIGHTS or the Hugging Face cache"}
    shown = ", ".join(models[:5]) + (f" (+{len(models) - 5} more)" if len(models) > 5 else "")
    return {"ready": True, "detail": f"{device}; models found offline: {shown}"}


BACKENDS = {
    "dcgan": ("the offline default: 64x64 DCGAN with learned attribute directions", _dcgan),
    "diffusion": ("diffusers text-to-image (Stable Diffusion family), prompt slots + shared self-attention", _diffusion),
}


def list_generators() -> pd.DataFrame:
    """``name, ready, description, detail`` for every backend."""
    rows = []
    for name, (description, check) in BACKENDS.items():
        rows.append({"name": name, "description": description, **check()})
    return pd.DataFrame(rows, columns=["name", "ready", "description", "detail"])
