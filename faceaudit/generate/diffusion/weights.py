"""Where a diffusion model's weights come from, and checks that what was loaded is usable.

``generator.model`` in a protocol is a local directory or a Hugging Face hub id. It is resolved,
in this order, to a directory in the diffusers layout (``model_index.json`` at its root):

1. an existing local directory;
2. ``$FACEAUDIT_WEIGHTS/<org>/<name>`` or ``$FACEAUDIT_WEIGHTS/<name>`` (a plain folder per model), or ``$FACEAUDIT_WEIGHTS`` used as
   a Hugging Face hub cache (``models--<org>--<name>/snapshots/...``);
3. the Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``).

Nothing is downloaded unless the protocol says ``allow_download: true``. A model found nowhere is
one :class:`~faceaudit.core.errors.ModelUnavailable` line naming it and the three ways to provide it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from faceaudit.core.errors import BadInput, ModelUnavailable

WEIGHTS_ENV = "FACEAUDIT_WEIGHTS"
#: a usable CLIP BPE vocabulary has the 256-symbol byte alphabet (twice, with word ends) at least
MIN_TOKENIZER_SIZE = 256
#: what a prompt tokenizer must be able to spell without unknown tokens
TOKENIZER_PROBE = "a photograph of the face of a person"


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~"))


def how_to_provide(spec: str) -> str:
    return (f"put the diffusers folder at a local path and name that path, or under ${WEIGHTS_ENV}/{spec}, "
            f"or fetch it once into the Hugging Face cache (huggingface-cli download {spec}), "
            f"or set allow_download: true in the protocol")


def _in_hub_cache(repo_id: str, cache_dir: str | Path | None) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        path = Path(snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=True))
    except Exception:  # LocalEntryNotFoundError, a malformed cache, an invalid repo id: not here
        return None
    return path if (path / "model_index.json").exists() else None


def resolve_model_dir(spec: str, allow_download: bool = False, where: str = "generator.model") -> Path:
    """The local diffusers directory for ``spec`` (a path or a hub id); see the module docstring."""
    if not isinstance(spec, str) or not spec.strip():
        raise BadInput(f"{where}: expected a local directory or a hub id, got {spec!r}")
    local = Path(spec).expanduser()
    if local.is_dir():
        if not (local / "model_index.json").exists():
            raise BadInput(f"{where}: {local} has no model_index.json (not a diffusers pipeline folder)")
        return local
    weights = os.environ.get(WEIGHTS_ENV)
    if weights:
        for candidate in (Path(weights) / spec, Path(weights) / spec.replace("/", "--")):
            if (candidate / "model_index.json").exists():
                return candidate
    if not _looks_like_hub_id(spec):
        raise ModelUnavailable(f"{where}: directory not found: {local} (nor under ${WEIGHTS_ENV})")
    if weights:
        found = _in_hub_cache(spec, weights)
        if found:
            return found
    found = _in_hub_cache(spec, None)
    if found:
        return found
    if allow_download:
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(spec))
        except Exception as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ModelUnavailable(f"{where}: cannot download {spec!r} ({first}); {how_to_provide(spec)}") from None
    raise ModelUnavailable(f"{where}: {spec!r} is not available offline; {how_to_provide(spec)}")


def check_tokenizer(tokenizer, where: str) -> None:
    """Reject a tokenizer that loaded without its vocabulary.

    ``CLIPTokenizer.from_pretrained`` offline can return a tokenizer holding only its two special
    tokens without raising; every prompt then encodes to end-of-text tokens and the images ignore
    the prompt entirely, which would make every group identical.
    """
    if tokenizer is None:
        return
    size = len(tokenizer)
    ids = tokenizer(TOKENIZER_PROBE).input_ids
    specials = set(getattr(tokenizer, "all_special_ids", []) or [])
    unk = getattr(tokenizer, "unk_token_id", None)
    content = [i for i in ids if i not in specials and i != unk]
    if size < MIN_TOKENIZER_SIZE or not content:
        raise BadInput(f"{where}: the tokenizer loaded with an empty vocabulary ({size} tokens; "
                       f"{TOKENIZER_PROBE!r} encodes to no word tokens); the model folder's tokenizer files are missing or incomplete")


#: files up to this size are hashed; larger weight files are identified by their size (hashing
#: gigabytes on every stage check would cost more than the check saves)
HASH_LIMIT_BYTES = 32 * 2**20


def model_fingerprint(model_dir: Path) -> dict[str, str]:
    """Relative path -> sha256 (small files: configs, tokenizer, small weights) or size (large
    weights) of every file of a model folder; part of the generate stage's inputs hash."""
    from faceaudit.rundir import sha256_file

    out = {}
    for f in sorted(model_dir.rglob("*")):
        if f.is_file() and not f.name.startswith("."):
            size = f.stat().st_size
            out[str(f.relative_to(model_dir))] = sha256_file(f) if size <= HASH_LIMIT_BYTES else f"size:{size}"
    return out


def render_inputs(spec: Any) -> dict[str, Any]:
    """The files that determine a diffusion render besides the protocol: the model folder's
    fingerprint (:func:`model_fingerprint`) and the identity adapter file's sha256 (None without
    one). Both are resolved here, offline, so a missing one is a one-line error (exit 2).

    Parameters
    ----------
    spec : DiffusionGeneratorSpec
        The protocol's ``generator`` block.

    Returns
    -------
    dict
        ``{"model_files": {...}, "identity_adapter_sha256": str | None}``
    """
    from faceaudit.core.hashing import sha256_file
    from faceaudit.generate.diffusion.identity_adapter import resolve_adapter_file

    adapter = spec.identity_adapter
    adapter_sha = sha256_file(resolve_adapter_file(adapter.weights)) if adapter is not None else None
    model_dir = resolve_model_dir(spec.model, allow_download=spec.allow_download)
    return {"model_files": model_fingerprint(model_dir), "identity_adapter_sha256": adapter_sha}
