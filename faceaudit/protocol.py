"""Audit protocols: the pydantic schema, loading, validation and defaults.

A protocol says which faces to render (seeds, protected levels, nuisance edits), which models to
test, how to build pairs and how to analyse them. The resolved protocol (every default filled in)
is written to ``RUN/protocol.yaml``; its hash decides whether a finished stage must be redone.

Every validation failure becomes a one-line :class:`~faceaudit.errors.BadInput` naming the file
and the key, e.g. ``protocols/x.yaml: edits.0.levels: Input should be a valid list``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from faceaudit.errors import BadInput

#: Nuisance attributes the offline DCGAN generator can edit (each has a measure in faceaudit.measure).
NUISANCE_ATTRIBUTES = ("lighting", "yaw", "smile")


class _Strict(BaseModel):
    # Unknown keys are errors: a typo ("n_seed") must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid")


class SkinLevel(_Strict):
    """One protected level of skin tone, defined on measured ITA (degrees).

    A face belongs to the level when ``ita_min <= measured ITA < ita_max``; the generator moves each
    seed along the skin direction towards ``target`` until its measured ITA lands in the bin.
    """

    name: str
    ita_min: float
    ita_max: float
    target: float

    @model_validator(mode="after")
    def _check_bin(self) -> "SkinLevel":
        if not self.ita_min < self.ita_max:
            raise ValueError(f"level {self.name!r}: ita_min must be < ita_max")
        if not self.ita_min <= self.target < self.ita_max:
            raise ValueError(f"level {self.name!r}: target must lie in [ita_min, ita_max)")
        return self


class ProtectedSpec(_Strict):
    attribute: Literal["skin_tone"] = "skin_tone"
    #: the level every other level is contrasted against
    reference: str = "light"
    levels: list[SkinLevel] = Field(
        default_factory=lambda: [
            # Chardon et al.'s ITA boundaries at 10 and -30 degrees, lumped to three levels that the
            # DCGAN's dim renders can reach (docs/generator.md: "Skin-tone levels")
            SkinLevel(name="light", ita_min=10.0, ita_max=90.0, target=28.0),
            SkinLevel(name="intermediate", ita_min=-30.0, ita_max=10.0, target=-10.0),
            SkinLevel(name="dark", ita_min=-90.0, ita_max=-30.0, target=-55.0),
        ]
    )

    @model_validator(mode="after")
    def _check_levels(self) -> "ProtectedSpec":
        names = [lv.name for lv in self.levels]
        if len(names) < 2:
            raise ValueError("need at least 2 protected levels")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate level names {names}")
        if self.reference not in names:
            raise ValueError(f"reference {self.reference!r} is not one of the levels {names}")
        return self


class EditSpec(_Strict):
    """A nuisance attribute edited at signed levels from the prototype.

    Levels are in standard deviations of the attribute's measure across random faces: level +1
    moves the latent along the attribute's conditional direction by the amount that, on average,
    raises the measure by one SD. Level 0 is the prototype itself and is not allowed here.
    """

    attribute: Literal["lighting", "yaw", "smile"]
    levels: list[float]

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("at least one level")
        if any(x == 0 for x in v):
            raise ValueError("level 0 is the prototype; leave it out")
        if len(set(v)) != len(v):
            raise ValueError("duplicate levels")
        return sorted(v)


class GeneratorSpec(_Strict):
    name: Literal["dcgan"] = "dcgan"
    #: directions file from `faceaudit directions fit`; None = the file shipped with faceaudit
    directions: Optional[str] = None
    #: latent truncation (|z| is clipped to this many SD); 0 disables
    truncation: float = 2.5
    #: seeds whose skin edit cannot reach a bin within this many search steps are excluded
    max_skin_steps: int = 12


class PairSpec(_Strict):
    #: cap on impostor pairs per (group, edit condition); None = all pairs of distinct seeds
    max_impostors_per_condition: Optional[int] = None
    #: None: pairs.parquet and scores hold every impostor pair. N: they hold the genuine pairs and a
    #: deterministic sample of N impostor pairs per (group, edit condition), for inspection; the
    #: analysis scores *every* impostor pair from the embeddings in blocks (docs/statistics.md,
    #: "Impostor statistics at scale"), so memory does not grow with the number of seeds.
    impostor_sample: Optional[int] = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _sample_or_cap(self) -> "PairSpec":
        if self.impostor_sample is not None and self.max_impostors_per_condition is not None:
            raise ValueError("impostor_sample (store a sample, analyse all pairs) and max_impostors_per_condition "
                             "(analyse a capped design) exclude each other")
        return self


class AnalysisSpec(_Strict):
    target_fmr: list[float] = Field(default_factory=lambda: [1e-3])
    n_boot: int = 1000
    ci_level: float = 0.95
    adjust: Literal["holm", "fdr_bh"] = "holm"
    #: GARBE alpha (weight of the FMR term)
    fairness_alpha: float = 0.5
    far_points: list[float] = Field(default_factory=lambda: [1e-4, 1e-3, 1e-2])

    @field_validator("target_fmr")
    @classmethod
    def _fmr(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < x < 1 for x in v):
            raise ValueError("each target_fmr must be in (0, 1)")
        return v

    @field_validator("ci_level")
    @classmethod
    def _ci(cls, v: float) -> float:
        if not 0.5 < v < 1:
            raise ValueError("ci_level must be in (0.5, 1)")
        return v

    @field_validator("n_boot")
    @classmethod
    def _nboot(cls, v: int) -> int:
        if v < 100:
            raise ValueError("n_boot must be at least 100")
        return v


class DatasetSpec(_Strict):
    """Faces imported from a dataset (``faceaudit import``) instead of generated."""

    importer: Literal["causalface", "folder"]
    source: str
    #: experimental: every identity appears in every group (CausalFace: paired, causal contrasts);
    #: observational: real photographs, identity is the cluster, conclusions are correlational
    design: Literal["experimental", "observational"]
    #: protected attributes, in the order they are joined in group names (``race=black|gender=female``)
    attributes: list[str] = Field(min_length=1)
    groups: list[str] = Field(min_length=2)
    #: the group the others are contrasted against
    reference: str

    @model_validator(mode="after")
    def _check_reference(self) -> "DatasetSpec":
        if self.reference not in self.groups:
            raise ValueError(f"reference {self.reference!r} is not one of the groups {self.groups}")
        return self


class Protocol(_Strict):
    name: str
    description: str = ""
    #: master seed: every random choice (latents, pair sampling, bootstrap) derives from it
    seed: int = 0
    n_seeds: int = Field(ge=2)
    generator: GeneratorSpec = Field(default_factory=GeneratorSpec)
    protected: ProtectedSpec = Field(default_factory=ProtectedSpec)
    edits: list[EditSpec]
    models: list[str] = Field(default_factory=lambda: ["dlib", "sface"], min_length=1)
    #: "auto" uses CUDA when torch/onnxruntime see a GPU
    device: Literal["auto", "cpu", "cuda"] = "auto"
    pairs: PairSpec = Field(default_factory=PairSpec)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    #: set by ``faceaudit import``: the faces come from a dataset (groups and reference from there)
    dataset: Optional[DatasetSpec] = None

    @model_validator(mode="after")
    def _unique_edits(self) -> "Protocol":
        attrs = [e.attribute for e in self.edits]
        if len(set(attrs)) != len(attrs):
            raise ValueError(f"edits: attribute listed twice in {attrs}")
        return self

    # ---- derived views -------------------------------------------------------------------
    @property
    def group_names(self) -> list[str]:
        if self.dataset is not None:
            return list(self.dataset.groups)
        return [f"skin={lv.name}" for lv in self.protected.levels]

    @property
    def reference_group(self) -> str:
        return self.dataset.reference if self.dataset is not None else f"skin={self.protected.reference}"

    @property
    def protected_attribute(self) -> str:
        """Name of the protected attribute in results (``skin_tone``; ``race+gender`` for an import)."""
        return "+".join(self.dataset.attributes) if self.dataset is not None else self.protected.attribute

    def resolved_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.resolved_dict(), sort_keys=False)


def _format_error(err: ValidationError, where: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "required key is missing"
    elif "input" in first and first["type"] not in ("value_error",):
        msg = f"{msg} (got {first['input']!r})"
    return f"{where}: {loc}: {msg}"


def parse_protocol(data: Any, where: str = "protocol", check_models: bool = True) -> Protocol:
    """Validate a protocol mapping. ``check_models=False`` checks the schema only: a finished run
    must open (analysis, report, notebooks) where its models (plugins, weights) are not installed."""
    if not isinstance(data, dict):
        raise BadInput(f"{where}: a protocol must be a YAML mapping, got {type(data).__name__}")
    try:
        proto = Protocol.model_validate(data)
    except ValidationError as err:
        raise BadInput(_format_error(err, where)) from None
    if check_models:
        _check_models(proto, where)
    return proto


def _check_models(proto: Protocol, where: str) -> None:
    # Validate names up front so an unknown model fails in a second, not after rendering.
    from faceaudit.models.registry import check_model_spec

    for i, spec in enumerate(proto.models):
        problem = check_model_spec(spec)
        if problem:
            raise BadInput(f"{where}: models.{i}: {problem}")


def load_protocol(path: str | Path, check_models: bool = True) -> Protocol:
    """Read, parse and validate a protocol YAML file; every failure is a one-line BadInput."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path}: protocol file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise BadInput(f"{path}: not valid YAML{at}: {getattr(err, 'problem', err)}") from None
    return parse_protocol(data, where=str(path), check_models=check_models)
