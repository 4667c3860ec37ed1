"""The diffusion backend: a diffusers text-to-image model, protected levels and edits as prompt slots."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceaudit.generate.backend import GeneratorBackend, protected_dump

if TYPE_CHECKING:
    import pandas as pd

    from faceaudit.protocol import Protocol


def local_diffusion_models() -> list[str]:
    """Diffusers pipeline folders found offline: ``$FACEAUDIT_WEIGHTS/<org>/<name>`` and hub caches."""
    from faceaudit.generate.diffusion.weights import WEIGHTS_ENV

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


class DiffusionBackend(GeneratorBackend):
    """``generator.name: diffusion`` (docs/generator.md, "Diffusion")."""

    name = "diffusion"
    description = "diffusers text-to-image (Stable Diffusion family), prompt slots + shared self-attention"
    directions_note = "none (prompt slots)"

    def readiness(self) -> dict[str, Any]:
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

    def check_protocol(self, protocol: "Protocol") -> None:
        """Every prompt of the design can be built (a missing slot or edit phrase: one line, exit 2)."""
        from faceaudit.generate.diffusion.design import check_prompts

        check_prompts(protocol)

    def design_inputs(self, protocol: "Protocol") -> dict[str, Any]:
        """The design part of the protocol and the model folder's files (they stand where the
        directions file stands for the DCGAN), plus the identity adapter file's sha256 when one is
        set (a weight of the render too). Resolving both here makes a missing one fail before the
        stage starts (one line, exit 2)."""
        from faceaudit.generate.diffusion.weights import render_inputs

        g = protocol.generator
        files = render_inputs(g)
        inputs = {"seed": protocol.seed, "n_seeds": protocol.n_seeds, "generator": g.model_dump(),
                  "protected": protected_dump(protocol), "edits": [e.model_dump() for e in protocol.edits],
                  "model_files": files["model_files"], "device": protocol.device}
        if g.identity_adapter is not None:
            inputs["identity_adapter_sha256"] = files["identity_adapter_sha256"]
        return inputs

    def generate(self, protocol: "Protocol", run_root: str | Path, *, progress: bool = True,
                 keep_partial: bool = False, executor: Any = None) -> "pd.DataFrame":
        from faceaudit.generate.diffusion.design import generate_diffusion_faces

        return generate_diffusion_faces(protocol, run_root, progress=progress, keep_partial=keep_partial, executor=executor)

    def card_rows(self, protocol: "Protocol") -> list[tuple[str, str]]:
        g = protocol.generator
        return [("Diffusion model", g.model),
                ("Sampling", f"{g.steps} steps, guidance {g.guidance:g}, identity sharing {g.identity_sharing:g}"),
                ("Prompt template", g.prompt)]
