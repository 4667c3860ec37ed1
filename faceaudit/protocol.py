"""Audit protocols: the pydantic schema, loading, validation and defaults.

A protocol says which faces to render (seeds, protected levels, nuisance edits), which models to
test, how to build pairs and how to analyse them. The resolved protocol (every default filled in)
is written to ``RUN/protocol.yaml``; its hash decides whether a finished stage must be redone.

Every validation failure becomes a one-line :class:`~faceaudit.core.errors.BadInput` naming the file
and the key, e.g. ``protocols/x.yaml: edits.0.levels: Input should be a valid list``.

This module is the schema only: it does not resolve the model specs a protocol names (that needs
the model registry, which sits above it). :func:`faceaudit.api.validate` checks the schema and the
models; :func:`faceaudit.models.registry.check_model_specs` checks the models alone.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from faceaudit.core.config import FileMessages, format_validation_error, load_yaml
from faceaudit.core.errors import BadInput

#: generator backends a protocol can name (the tags of ``generator``'s union)
GENERATOR_NAMES = ("dcgan", "diffusion")

#: Nuisance attributes the offline DCGAN generator can edit (each has a measure in faceaudit.measure).
NUISANCE_ATTRIBUTES = ("lighting", "yaw", "smile", "exposure", "age")


class _Strict(BaseModel):
    # Unknown keys are errors: a typo ("n_seed") must not silently fall back to a default.
    # strict: `seed: true` is not the integer 1 and `n_boot: "500"` is not a number; ints are still
    # accepted where a float is asked for. NaN and infinity are never valid settings.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


#: an SD-scaled edit level: beyond this the latent walk leaves the generator's training distribution
MAX_EDIT_SD = 10.0
Probability = Annotated[float, Field(gt=0, lt=1)]


def _check_level_names(names: list[str], reference: str) -> None:
    """A protected attribute's levels: at least two, distinct, and the reference among them."""
    if len(names) < 2:
        raise ValueError("need at least 2 protected levels")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate level names {names}")
    if reference not in names:
        raise ValueError(f"reference {reference!r} is not one of the levels {names}")


class SkinLevel(_Strict):
    """One protected level of skin tone, defined on measured ITA (degrees).

    A face belongs to the level when ``ita_min <= measured ITA < ita_max``; the generator moves each
    seed along the skin direction towards ``target`` until its measured ITA lands in the bin.
    """

    name: str = Field(min_length=1)
    ita_min: float = Field(ge=-90, le=90)
    ita_max: float = Field(ge=-90, le=90)
    target: float = Field(ge=-90, le=90)

    @model_validator(mode="after")
    def _check_bin(self) -> "SkinLevel":
        if not self.ita_min < self.ita_max:
            raise ValueError(f"level {self.name!r}: ita_min must be < ita_max")
        if not self.ita_min <= self.target < self.ita_max:
            raise ValueError(f"level {self.name!r}: target must lie in [ita_min, ita_max)")
        return self


class ProtectedSpec(_Strict):
    attribute: Literal["skin_tone"] = "skin_tone"
    #: how a seed is placed in a level: ``latent`` moves the generator's latent along the skin
    #: direction (the generator's notion of darker skin, face shape included); ``recolor`` recolours
    #: the skin pixels of the seed's own face and changes nothing else (docs/generator.md)
    mechanism: Literal["latent", "recolor"] = "latent"
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
        _check_level_names([lv.name for lv in self.levels], self.reference)
        return self


class GenderLevel(_Strict):
    """One perceived gender presentation, defined on the placing classifier's P(male)
    (``GenderSpec.placed_by``; faceaudit.measure.perceived).

    A face belongs to the level when ``p_male_min <= P(male) < p_male_max`` (``p_male_max`` 1 is
    inclusive); the generator moves each seed along the conditional gender direction towards
    ``target``. Perceived presentation as a classifier outputs it, not anyone's gender.
    """

    name: str = Field(min_length=1)
    p_male_min: float = Field(ge=0, le=1)
    p_male_max: float = Field(ge=0, le=1)
    target: float = Field(gt=0, lt=1)

    @model_validator(mode="after")
    def _check_bin(self) -> "GenderLevel":
        if not self.p_male_min < self.p_male_max:
            raise ValueError(f"level {self.name!r}: p_male_min must be < p_male_max")
        if not self.p_male_min <= self.target <= self.p_male_max:
            raise ValueError(f"level {self.name!r}: target must lie in [p_male_min, p_male_max]")
        return self

    def contains(self, p_male: float) -> bool:
        return self.p_male_min <= p_male < self.p_male_max or (self.p_male_max >= 1.0 and p_male >= 1.0)


class GenderSpec(_Strict):
    """Perceived gender presentation as a protected attribute (group names ``gender=<level>``)."""

    attribute: Literal["gender"]
    reference: str = "male"
    levels: list[GenderLevel] = Field(
        default_factory=lambda: [
            # the classifier's decision boundary splits the levels; targets leave a margin so the
            # placed faces stay away from it, where the validating classifier disagrees most
            # (docs/generator.md, "Perceived gender")
            GenderLevel(name="female", p_male_min=0.0, p_male_max=0.5, target=0.25),
            GenderLevel(name="male", p_male_min=0.5, p_male_max=1.0, target=0.75),
        ]
    )
    #: extra renders per cell the joint skin and gender placement may use (on top of
    #: ``generator.max_skin_steps``) before the seed is excluded
    max_steps: int = Field(8, ge=1, le=100)
    #: the classifier whose P(male) places the cells (the levels' bins are on it); the other one
    #: validates (faces columns ``measured_gender_pmale`` and ``measured_gender_pmale_validation``)
    placed_by: Literal["faceres", "oarriaga"] = "faceres"

    @model_validator(mode="after")
    def _check_levels(self) -> "GenderSpec":
        _check_level_names([lv.name for lv in self.levels], self.reference)
        return self

    @property
    def validated_by(self) -> str:
        """The gender classifier that checks the placement (the one that does not place)."""
        return GENDER_VALIDATOR[self.placed_by]


#: each gender classifier's check: the other one
GENDER_VALIDATOR = {"faceres": "oarriaga", "oarriaga": "faceres"}
#: audited recognizers that share a graph with a gender classifier: auditing one on faces placed by
#: its own gender head is circular (the cells are defined by the model under audit)
GENDER_CLASSIFIER_RECOGNIZER = {"faceres": "faceres"}


#: the classes of the perceived-race measure (faceaudit.measure.gear: GEAR's race head, UTKFace labels)
RACE_MEASURE_CLASSES = ("white", "black", "asian", "indian", "other")
#: default race level name -> GEAR class, for level names that say the same thing (others: unmapped)
DEFAULT_RACE_CLASSES = {"white": "white", "black": "black", "asian": "asian", "east_asian": "asian",
                        "indian": "indian", "south_asian": "indian"}


class PromptAttributeSpec(_Strict):
    """A protected attribute that only a text-conditioned generator can render: its levels are
    prompt slots (``generator.slots``). The manipulation check reports the measured skin tone and
    perceived gender/age of each level; a race level is also checked by GEAR's perceived race
    (``in_level``: GEAR's most probable class is the level's ``race_classes`` entry).

    ``race_classes`` maps a race level to one of :data:`RACE_MEASURE_CLASSES` (or null: no check).
    Levels not given use :data:`DEFAULT_RACE_CLASSES` by name; a level neither names is unmapped,
    and its ``in_level`` is missing (the generation summary says why). GEAR's classes come from
    UTKFace's annotators: an indicative signal, not ground truth (docs/measures.md)."""

    attribute: Literal["race", "age_group"]
    reference: str
    levels: list[str] = Field(min_length=2)
    race_classes: dict[str, Optional[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_levels(self) -> "PromptAttributeSpec":
        _check_level_names(list(self.levels), self.reference)
        if self.race_classes and self.attribute != "race":
            raise ValueError(f"race_classes: only a race attribute has them, not {self.attribute}")
        unknown = sorted(set(self.race_classes) - set(self.levels))
        if unknown:
            raise ValueError(f"race_classes: {unknown} are not levels of {self.attribute} ({self.levels})")
        bad = sorted(str(v) for v in self.race_classes.values() if v is not None and v not in RACE_MEASURE_CLASSES)
        if bad:
            raise ValueError(f"race_classes: {bad} are not perceived-race classes {list(RACE_MEASURE_CLASSES)}")
        return self

    @property
    def level_names(self) -> list[str]:
        return list(self.levels)

    @property
    def measured_classes(self) -> dict[str, Optional[str]]:
        """Level -> the GEAR class that puts a face in it (None: no check); empty for age_group."""
        if self.attribute != "race":
            return {}
        return {lv: self.race_classes.get(lv, DEFAULT_RACE_CLASSES.get(lv)) for lv in self.levels}


def _protected_name(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("attribute", "skin_tone"))
    return str(getattr(value, "attribute", "skin_tone"))


AnyProtectedSpec = Annotated[
    Union[Annotated[ProtectedSpec, Tag("skin_tone")], Annotated[GenderSpec, Tag("gender")],
          Annotated[PromptAttributeSpec, Tag("race")], Annotated[PromptAttributeSpec, Tag("age_group")]],
    Discriminator(_protected_name),
]
#: tags of the ``protected`` union: one attribute (a mapping) or several (a list)
_PROTECTED_FORMS = ("single", "list")
ProtectedField = Annotated[
    Union[Annotated[AnyProtectedSpec, Tag("single")], Annotated[list[AnyProtectedSpec], Tag("list")]],
    Discriminator(lambda v: "list" if isinstance(v, list) else "single"),
]
#: how each protected attribute is named in group names (``skin=dark|gender=female``) and faces columns
GROUP_PREFIX = {"skin_tone": "skin", "gender": "gender", "race": "race", "age_group": "age_group"}
FACES_COLUMN = {"skin_tone": "skin_tone", "gender": "gender", "race": "race", "age_group": "age_group"}


def level_names(spec: Any) -> list[str]:
    return spec.level_names if isinstance(spec, PromptAttributeSpec) else [lv.name for lv in spec.levels]


class EditSpec(_Strict):
    """A nuisance attribute edited at signed levels from the prototype.

    Levels are in standard deviations of the attribute's measure across random faces: level +1
    moves the latent along the attribute's conditional direction by the amount that, on average,
    raises the measure by one SD. Level 0 is the prototype itself and is not allowed here.
    """

    attribute: Literal["lighting", "yaw", "smile", "exposure", "age", "glasses"]
    levels: list[Annotated[float, Field(ge=-MAX_EDIT_SD, le=MAX_EDIT_SD)]]

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
    truncation: float = Field(2.5, ge=0, le=10)
    #: seeds whose skin edit cannot reach a bin within this many search steps are excluded
    max_skin_steps: int = Field(12, ge=1, le=1000)
    #: largest within-seed change of border luma (outer 6 px, /255) between any two skin levels'
    #: prototypes; the skin search holds it (None = skin only, exposure may drift with skin)
    exposure_tolerance: Optional[float] = Field(5.0, gt=0, le=255)


class IdentityAdapterSpec(_Strict):
    """An IP-Adapter FaceID-style file; a seed's edits are conditioned on its prototype's embedding."""

    #: a local ``.bin``/``.safetensors`` file, or its path under $FACEAUDIT_WEIGHTS
    weights: str = Field(min_length=1)
    scale: float = Field(0.6, ge=0.0, le=2.0)
    #: the faceaudit recognizer that embeds the prototype (its width must match the adapter's input)
    embedder: str = "insightface"


#: the diffusion generator's default prompt template and phrases: schema defaults, plain data (the
#: backend's prompt builder, faceaudit.generate.diffusion.prompts, uses the same ones)
DEFAULT_PROMPT_TEMPLATE = ("a close-up passport-style photograph of the face of {skin} adult person, {edit}, "
                           "neutral grey background, sharp focus")
DEFAULT_NEGATIVE_PROMPT = "cartoon, drawing, painting, multiple people, text, watermark, blurry"
DEFAULT_NEUTRAL_PHRASE = "frontal view, even studio lighting, neutral expression"
#: protected attribute (the group's key, ``skin`` in ``skin=dark``) -> level -> phrase
DEFAULT_SLOTS: dict[str, dict[str, str]] = {
    "skin": {"light": "a light-skinned", "intermediate": "a medium brown-skinned", "dark": "a dark-skinned"},
}


class DiffusionGeneratorSpec(_Strict):
    """A diffusers text-to-image model (docs/generator.md, "Diffusion"). Protected levels and edits
    are prompt slots; every image is measured like the DCGAN's."""

    name: Literal["diffusion"]
    #: a local diffusers folder or a Hugging Face hub id (resolved offline, see faceaudit.generate.diffusion.weights)
    model: str = Field(min_length=1)
    resolution: int = Field(512, ge=32, le=2048, multiple_of=8)
    steps: int = Field(20, ge=1, le=1000)
    #: classifier-free guidance scale; <= 1 turns guidance off
    guidance: float = Field(5.0, ge=0.0, le=50.0)
    #: prior share of each edit's self-attention given to its prototype's keys/values (0 = off)
    identity_sharing: float = Field(0.8, ge=0.0, le=1.0)
    #: images per pipeline call; None = from free GPU memory (CPU: 4). Fix it for byte-identical reruns.
    batch_size: Optional[int] = Field(None, ge=1, le=256)
    allow_download: bool = False
    #: template with one slot per protected attribute (``{skin}``) and ``{edit}``
    prompt: str = DEFAULT_PROMPT_TEMPLATE
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    #: what ``{edit}`` says for the prototype
    neutral_phrase: str = DEFAULT_NEUTRAL_PHRASE
    #: protected attribute -> level -> phrase for its slot
    slots: dict[str, dict[str, str]] = Field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_SLOTS.items()})
    #: edit attribute -> signed level (``+1``, ``-2``) -> phrase; unlisted ones get the built-in phrase
    edit_phrases: dict[str, dict[str, str]] = Field(default_factory=dict)
    #: optional IP-Adapter FaceID-style identity conditioning (faceaudit/generate/diffusion/identity_adapter.py)
    identity_adapter: Optional[IdentityAdapterSpec] = None



def _generator_name(value: Any) -> str:
    # `name` may be left out for the DCGAN (the default); the tag picks the schema
    if isinstance(value, dict):
        return str(value.get("name", "dcgan"))
    return str(getattr(value, "name", "dcgan"))


AnyGeneratorSpec = Annotated[
    Union[Annotated[GeneratorSpec, Tag("dcgan")], Annotated[DiffusionGeneratorSpec, Tag("diffusion")]],
    Discriminator(_generator_name),
]


class PairSpec(_Strict):
    #: cap on impostor pairs per (group, edit condition); None = all pairs of distinct seeds
    max_impostors_per_condition: Optional[int] = Field(None, ge=1)
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


class PrimarySpec(_Strict):
    """The declared primary analysis (docs/statistics.md, "Primary analysis and multiplicity").

    Only its rows of ``results/contrasts.parquet`` (``family == "primary"``) form the multiplicity
    family of ``analysis.adjust``; every other row is exploratory.
    """

    #: contrast metrics in the primary family
    metrics: list[Literal["fnmr_diff", "fmr_diff", "fnmr_ratio", "fmr_ratio", "genuine_score_diff"]] = Field(
        default_factory=lambda: ["fnmr_diff", "fmr_diff"], min_length=1)
    #: ``reference``: each protected level against its reference level (marginal effects in a crossed design)
    contrasts: Literal["reference"] = "reference"
    #: ``auto``: every edit condition separately plus one pooled estimate (``primary_pool``) over the
    #: edits whose leakage share is at most ``leakage_max``; or a list of condition labels
    #: (``lighting=+1``, ``none``), each tested separately and pooled together
    conditions: Union[Literal["auto"], list[str]] = "auto"
    #: an edit whose mean shift of a protected measure exceeds this share of the smallest gap between
    #: adjacent protected levels is not pooled (results/leakage.parquet)
    leakage_max: float = Field(0.25, gt=0)


class AnalysisSpec(_Strict):
    target_fmr: list[float] = Field(default_factory=lambda: [1e-3])
    n_boot: int = Field(1000, le=1_000_000)
    ci_level: float = 0.95
    adjust: Literal["holm", "fdr_bh"] = "holm"
    #: GARBE alpha (weight of the FMR term), a convex weight
    fairness_alpha: float = Field(0.5, ge=0, le=1)
    #: FMRs at which the DET curve's FNMR is tabulated
    far_points: list[Probability] = Field(default_factory=lambda: [1e-4, 1e-3, 1e-2])
    #: the declared primary analysis and its multiplicity family
    primary: PrimarySpec = Field(default_factory=PrimarySpec)
    #: extra operating points besides ``target_fmr`` (docs/statistics.md, "Operating points"):
    #: ``MODEL: 0.363`` a fixed threshold in the model's own similarity convention, and/or
    #: ``calibration_run: RUN`` a run of real photographs (``faceaudit import folder``) whose
    #: impostors set each model's threshold at every target FMR
    thresholds: dict[str, Union[float, str]] = Field(default_factory=dict)
    #: a gate policy file (faceaudit.gate) the audit checks the results against (results/gate.json);
    #: the card colours its headline only against this policy's bounds. A relative path is read from
    #: the working directory, else from faceaudit's source tree (``protocols/policies/default.yaml``)
    policy: Optional[str] = None

    @field_validator("target_fmr")
    @classmethod
    def _fmr(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < x < 1 for x in v):
            raise ValueError("each target_fmr must be in (0, 1)")
        return v

    @field_validator("thresholds", mode="before")
    @classmethod
    def _thresholds(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        for key, value in v.items():
            if key == "calibration_run":
                if not isinstance(value, str) or not value.strip():
                    raise ValueError(f"calibration_run must be the path of a run directory, not {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{key}: a fixed threshold must be a number, not {value!r}")
            elif not math.isfinite(float(value)):
                raise ValueError(f"{key}: a fixed threshold must be a finite number, not {value!r}")
        return {k: (str(x) if k == "calibration_run" else float(x)) for k, x in v.items()}

    @property
    def fixed_thresholds(self) -> dict[str, float]:
        """Model -> the fixed threshold a user deploys (``analysis.thresholds`` without ``calibration_run``)."""
        return {k: float(x) for k, x in self.thresholds.items() if k != "calibration_run"}

    @property
    def calibration_run(self) -> Optional[str]:
        """The reference run of real photographs that calibrates thresholds, if any."""
        value = self.thresholds.get("calibration_run")
        return None if value is None else str(value)

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


#: most synthetic identities one protocol may ask for (each renders ~40 images)
MAX_SEEDS = 100_000


class DatasetSpec(_Strict):
    """Faces imported from a dataset (``faceaudit import``) instead of generated."""

    #: ``scores``: comparison scores from the user's own pipeline (no images; nothing to embed or score)
    importer: Literal["causalface", "folder", "scores"]
    source: str
    #: experimental: every identity appears in every group (CausalFace: paired, causal contrasts);
    #: observational: real photographs or their scores, identity is the cluster, conclusions are correlational
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
    name: str = Field(min_length=1)
    description: str = ""
    #: master seed: every random choice (latents, pair sampling, bootstrap) derives from it
    seed: int = Field(0, ge=0, lt=2**32)
    n_seeds: int = Field(ge=2, le=MAX_SEEDS)
    generator: AnyGeneratorSpec = Field(default_factory=GeneratorSpec)
    #: one protected attribute (a mapping: today's skin-tone design), or a list of them crossed into
    #: cells (``[skin_tone, gender]``: every kept seed is rendered in every skin x gender cell)
    protected: ProtectedField = Field(default_factory=ProtectedSpec)
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

    @model_validator(mode="after")
    def _check_protected(self) -> "Protocol":
        specs = self.protected_specs
        if not specs:
            raise ValueError("protected: list at least one protected attribute")
        names = [p.attribute for p in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"protected: attribute listed twice in {names}")
        if self.generator.name == "dcgan":
            if names[0] != "skin_tone":
                raise ValueError("protected: the dcgan generator places every seed by skin tone first; list skin_tone "
                                 "as the first protected attribute")
            prompt_only = [n for n in names if n in ("race", "age_group")]
            if prompt_only:
                raise ValueError(f"protected: {prompt_only[0]!r} is a prompt slot; only the diffusion generator renders it")
            if any(e.attribute == "glasses" for e in self.edits):
                raise ValueError("edits: 'glasses' is a prompt edit; only the diffusion generator renders it")
        return self

    @model_validator(mode="after")
    def _not_placed_by_an_audited_model(self) -> "Protocol":
        gspec = self.protected_spec("gender")
        # only the DCGAN places gender with a classifier; a diffusion prompt sets it, and the
        # classifier there only reports whether the face shows the level (``in_level``)
        placing = gspec is not None and self.generator.name == "dcgan"
        shared = GENDER_CLASSIFIER_RECOGNIZER.get(gspec.placed_by) if placing else None
        # a model spec's base name (``faceres``, ``insightface:buffalo_m`` -> ``insightface``)
        if shared is not None and shared in [m.split(":")[0] for m in self.models]:
            raise ValueError(
                f"models: {shared!r} shares its graph with the gender classifier that places the cells "
                f"(protected gender placed_by: {gspec.placed_by}), so its audit would be circular; audit it with "
                f"placed_by: {GENDER_VALIDATOR[gspec.placed_by]}, or drop it from models")
        return self

    @field_validator("models")
    @classmethod
    def _unique_models(cls, v: list[str]) -> list[str]:
        # Two entries for one model would embed and score it twice under one name.
        dup = sorted({m for m in v if v.count(m) > 1})
        if dup:
            raise ValueError(f"model {dup[0]!r} is listed more than once")
        return v

    # ---- derived views -------------------------------------------------------------------
    @property
    def protected_specs(self) -> list[Any]:
        """The protected attributes, in the order their levels are joined in group names."""
        return list(self.protected) if isinstance(self.protected, list) else [self.protected]

    def protected_spec(self, attribute: str) -> Any | None:
        return next((p for p in self.protected_specs if p.attribute == attribute), None)

    @property
    def skin(self) -> ProtectedSpec | None:
        """The skin-tone spec (ITA bins, mechanism), or None when skin tone is not protected."""
        return self.protected_spec("skin_tone")

    @property
    def cells(self) -> list[dict[str, str]]:
        """Every combination of protected levels, ``{attribute: level}``, in group-name order."""
        import itertools

        specs = self.protected_specs
        return [dict(zip([p.attribute for p in specs], combo)) for combo in itertools.product(*(level_names(p) for p in specs))]

    @staticmethod
    def cell_group(cell: dict[str, str]) -> str:
        return "|".join(f"{GROUP_PREFIX[a]}={v}" for a, v in cell.items())

    @property
    def group_names(self) -> list[str]:
        if self.dataset is not None:
            return list(self.dataset.groups)
        return [self.cell_group(c) for c in self.cells]

    @property
    def reference_group(self) -> str:
        if self.dataset is not None:
            return self.dataset.reference
        return self.cell_group({p.attribute: p.reference for p in self.protected_specs})

    @property
    def protected_attribute(self) -> str:
        """Name of the protected attribute in results (``skin_tone``; ``skin_tone+gender``; ``race+gender`` for an import)."""
        if self.dataset is not None:
            return "+".join(self.dataset.attributes)
        return "+".join(p.attribute for p in self.protected_specs)

    @property
    def group_attributes(self) -> list[tuple[str, str, list[str], str]]:
        """``(attribute, group-name prefix, levels, reference level)`` of every protected attribute."""
        if self.dataset is not None:
            if len(self.dataset.attributes) < 2:
                return []
            refs = dict(part.split("=", 1) for part in self.dataset.reference.split("|"))
            out = []
            for a in self.dataset.attributes:
                levels = sorted({dict(p.split("=", 1) for p in g.split("|"))[a] for g in self.dataset.groups})
                out.append((a, a, levels, refs[a]))
            return out
        return [(p.attribute, GROUP_PREFIX[p.attribute], level_names(p), p.reference) for p in self.protected_specs]

    def resolved_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        # No line folding: a long path or description must print, and round-trip, exactly.
        return yaml.safe_dump(self.resolved_dict(), sort_keys=False, width=float("inf"), allow_unicode=True)


def _user_loc(parts: tuple) -> tuple:
    """An error's location without the union tags pydantic adds, which are not keys the user wrote."""
    parts = list(parts)
    if len(parts) > 1 and parts[0] == "generator" and parts[1] in GENERATOR_NAMES:
        del parts[1]  # the generator's name picks its schema
    if len(parts) > 1 and parts[0] == "protected":
        # one attribute or a list of them; then the attribute's name
        if parts[1] in _PROTECTED_FORMS:
            del parts[1]
        k = 2 if len(parts) > 1 and isinstance(parts[1], int) else 1
        if len(parts) > k and parts[k] in GROUP_PREFIX:
            del parts[k]
    return tuple(parts)


def _explain(error: dict) -> tuple[tuple, str] | None:
    """A protected attribute pydantic cannot place is named as such, with the ones that exist."""
    if error["type"] == "union_tag_invalid" and error["loc"][:1] == ("protected",):
        return (*error["loc"], "attribute"), (f"unknown protected attribute {error['ctx'].get('tag')!r} "
                                              f"(one of {', '.join(GROUP_PREFIX)})")
    return None


def parse_protocol(data: Any, where: str = "protocol") -> Protocol:
    """Validate a protocol mapping against the schema.

    The model specs are not resolved here: a finished run must open (analysis, report, notebooks)
    where its models (plugins, weights) are not installed, and the schema must not depend on the
    model registry. :func:`faceaudit.api.validate` (``faceaudit validate``) checks both.

    Parameters
    ----------
    data : Any
        The parsed YAML.
    where : str
        Prefix of error messages (the file).

    Returns
    -------
    Protocol
        The protocol with every default filled in.

    Examples
    --------
    >>> p = parse_protocol({"name": "tiny", "n_seeds": 4, "edits": [{"attribute": "yaw", "levels": [-1, 1]}]})
    >>> p.group_names, p.models
    (['skin=light', 'skin=intermediate', 'skin=dark'], ['dlib', 'sface'])
    >>> parse_protocol({"name": "tiny", "n_seed": 4, "edits": []}, where="p.yaml")
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: p.yaml: n_seed: unknown key (did you mean 'n_seeds'?)
    """
    if not isinstance(data, dict):
        raise BadInput(f"{where}: a protocol must be a YAML mapping, got {type(data).__name__}")
    try:
        return Protocol.model_validate(data)
    except ValidationError as err:
        raise BadInput(format_validation_error(err, where, Protocol, loc_cleanup=_user_loc, explain=_explain)) from None


#: how a protocol file that cannot be read is reported
_PROTOCOL_FILE = FileMessages(
    missing="{path}: protocol file not found",
    directory="{path}: is a directory, not a protocol file",
    not_utf8="{path}: not UTF-8 text (byte {byte}); save the protocol as UTF-8",
    unreadable="{path}: cannot read the protocol: {reason}",
)


def load_protocol(path: str | Path) -> Protocol:
    """Read, parse and validate a protocol YAML file; every failure is a one-line BadInput.

    Parameters
    ----------
    path : str or Path
        The protocol file (UTF-8 YAML).

    Returns
    -------
    Protocol
        The protocol with every default filled in (model specs not resolved).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "tiny.yaml"
    >>> _ = path.write_text("name: tiny\\nn_seeds: 4\\nedits: [{attribute: yaw, levels: [-1, 1]}]\\n")
    >>> load_protocol(path).reference_group
    'skin=light'
    >>> load_protocol("no/such/protocol.yaml")
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: no/such/protocol.yaml: protocol file not found
    """
    path = Path(path)
    return parse_protocol(load_yaml(path, "protocol", _PROTOCOL_FILE), where=str(path))
