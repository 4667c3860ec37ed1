"""The generate stage for a diffusion generator: the paired design rendered from prompt slots.

For every batch of seeds and every protected cell (one level of each protected attribute, e.g.
``race=black|gender=female``; each attribute fills its own prompt slot): the prototype (neutral ``{edit}`` phrase), then
each nuisance edit at each signed level, all from the seed's initial latent, the edits sharing the
prototype's self-attention (``identity_sharing``). Every image is measured with the same
:class:`~faceaudit.measure.FaceMeasurer` as the DCGAN's; nothing about a level is assumed from its
prompt: ``in_level`` records whether the measures put the image in its cell (skin: measured ITA in
the level's bin; gender: faceres P(male) in the level's bin; missing where no measure exists, as for
a prompted race), perceived gender and age are measured by the classifiers whenever the design
prompts for gender, race, an age group or an age edit, and the manipulation check reports achieved changes. An image in which no face is found is kept (its
landmark measures are NaN, ``measured_ok`` False); the recognizers then mark it ``fte``, which the
error rates count per group, so a generator that fails one group more often shows up in the card.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from faceaudit.generate.base import Edit
from faceaudit.generate.design import FACE_COLUMNS, _remove_stale_images, encode_png, face_id, needs_perceived
from faceaudit.generate.perceived_directions import PERCEIVED_COLUMNS, perceived_columns
from faceaudit.generate.prompts import PromptBuilder
from faceaudit.measure import ALL_COLUMNS, FaceMeasurer
from faceaudit.protocol import FACES_COLUMN, GROUP_PREFIX, Protocol, level_names
from faceaudit.rundir import RunDir, sha256_bytes, write_bytes, write_json

#: columns only a prompted generator writes
PROMPT_COLUMNS = ["prompt", "in_level"]


def build_generator(protocol: Protocol):
    from faceaudit.generate.diffusion import DiffusionGenerator

    g = protocol.generator
    return DiffusionGenerator(
        model_id=g.model, protocol_seed=protocol.seed, device=protocol.device, resolution=g.resolution,
        num_inference_steps=g.steps, guidance_scale=g.guidance, identity_sharing=g.identity_sharing,
        batch_size=g.batch_size, allow_download=g.allow_download, prompt=g.prompt, negative_prompt=g.negative_prompt,
        neutral_phrase=g.neutral_phrase, slots=g.slots, edit_phrases=g.edit_phrases,
        identity_adapter=g.identity_adapter.model_dump() if g.identity_adapter else None,
    )


def generate_diffusion_faces(protocol: Protocol, run_root: str | Path, progress: bool = True, generator=None) -> pd.DataFrame:
    """Render and measure the protocol's design with the diffusion generator; write ``images/`` and
    ``results/generation.json``; return the faces table (the caller writes ``faces.parquet``)."""
    from faceaudit.generate.batching import progress_bar

    t0 = time.perf_counter()
    run = RunDir(run_root)
    run.root.mkdir(parents=True, exist_ok=True)
    cells = protocol.cells  # every combination of protected levels: one prompt slot per attribute
    edits = [Edit(e.attribute, float(v)) for e in protocol.edits for v in e.levels]
    g = protocol.generator
    # every prompt is built first: a missing phrase fails in a second, before the model loads
    PromptBuilder(g.prompt, g.slots, g.edit_phrases, g.neutral_phrase, g.negative_prompt).check(protocol.group_names, edits)
    gen = generator or build_generator(protocol)
    measurer = FaceMeasurer()
    perceived = None
    if needs_perceived(protocol):
        from faceaudit.measure.perceived import PerceivedAttributes

        perceived = PerceivedAttributes(device=protocol.device)
    checks = _level_checks(protocol)
    seeds = list(range(protocol.n_seeds))
    records: list[dict[str, Any]] = []
    tables: list[pd.DataFrame] = []
    with progress_bar(progress) as bar:
        task = bar.add_task("generate: diffusion faces", total=len(seeds) * len(cells) * (1 + len(edits)))
        for start in range(0, len(seeds), gen.batch_size):
            batch = seeds[start : start + gen.batch_size]
            for cell in cells:
                group = protocol.cell_group(cell)
                name = "_".join(cell.values())
                for edit in [Edit()] + edits:
                    result = gen.render(batch, group, None if edit.attribute == "none" else edit)
                    measures = measurer.measure(result.images).reset_index(drop=True)
                    if perceived is not None:
                        measures = pd.concat([measures, perceived_columns(perceived.predict(list(result.images)))], axis=1)
                    for k, s in enumerate(batch):
                        data = encode_png(result.images[k])
                        rel = f"images/{face_id(s, name, edit.attribute, edit.level)}.png"
                        write_bytes(run.root / rel, data)
                        records.append({
                            "face_id": face_id(s, name, edit.attribute, edit.level), "seed": int(s), "group": group,
                            **{FACES_COLUMN[a]: v for a, v in cell.items()},
                            "edit_attr": edit.attribute, "edit_level": float(edit.level),
                            "path": rel, "sha256": sha256_bytes(data), "source": gen.name,
                            "prompt": str(result.metadata["prompt"].iloc[k]),
                            # measured, not assumed from the prompt (None: no measure for any of the cell's attributes)
                            "in_level": _in_level(checks, cell, measures.iloc[k]),
                        })
                    tables.append(measures)
                    bar.advance(task, len(batch))
            gen.release()
    attr_cols = [FACES_COLUMN[p.attribute] for p in protocol.protected_specs]
    base_cols = FACE_COLUMNS[:3] + attr_cols + FACE_COLUMNS[4:]
    faces = pd.DataFrame(records, columns=base_cols + PROMPT_COLUMNS)
    faces["in_level"] = faces["in_level"].astype("boolean")  # missing where nothing measures the level
    meas = pd.concat(tables, ignore_index=True) if tables else FaceMeasurer.empty_table()
    for c in ALL_COLUMNS:
        meas[c] = meas[c].astype(bool if c == "measured_ok" else np.float64)
    extra = [c for c in PERCEIVED_COLUMNS if c in meas.columns]
    faces = pd.concat([faces.reset_index(drop=True), meas[ALL_COLUMNS + extra].reset_index(drop=True)], axis=1)
    faces = faces[base_cols + ALL_COLUMNS + PROMPT_COLUMNS + extra]
    seconds = time.perf_counter() - t0
    write_json(run.results / "generation.json", _summary(protocol, gen, faces, seconds))
    _remove_stale_images(run, set(faces["path"]))
    return faces


def _level_checks(protocol: Protocol) -> dict[str, Any]:
    """Per protected attribute with a measure: ``(column, level -> predicate)``."""
    checks: dict[str, Any] = {}
    skin = protocol.skin
    if skin is not None:
        bins = {lv.name: lv for lv in skin.levels}
        checks["skin_tone"] = ("measured_skin_ita", lambda name, x: bins[name].ita_min <= x < bins[name].ita_max)
    gender = protocol.protected_spec("gender")
    if gender is not None:
        by_name = {lv.name: lv for lv in gender.levels}
        checks["gender"] = ("measured_gender_pmale", lambda name, x: by_name[name].contains(x))
    return checks


def _in_level(checks: dict[str, Any], cell: dict[str, str], row: pd.Series) -> bool | None:
    """Whether the image's measures put it in every measurable level of its cell (None: no measure)."""
    verdicts = []
    for attr, level in cell.items():
        if attr not in checks:
            continue
        col, ok = checks[attr]
        x = float(row[col]) if col in row.index else float("nan")
        verdicts.append(bool(np.isfinite(x) and ok(level, x)))
    return all(verdicts) if verdicts else None


def _summary(protocol: Protocol, gen, faces: pd.DataFrame, seconds: float) -> dict[str, Any]:
    by_level = {}
    for spec in protocol.protected_specs:
        col = FACES_COLUMN[spec.attribute]
        prefix = GROUP_PREFIX[spec.attribute]
        for name in level_names(spec):
            rows = faces[faces[col] == name]
            protos = rows[rows["edit_attr"] == "none"]
            entry: dict[str, Any] = {
                "attribute": spec.attribute,
                "phrase": gen.prompts.slots.get(prefix, {}).get(name),
                "faces": int(len(rows)),
                "faces_without_landmarks": int((~rows["measured_ok"]).sum()),
            }
            if spec.attribute == "skin_tone":
                lv = next(x for x in spec.levels if x.name == name)
                inside = protos["measured_skin_ita"].between(lv.ita_min, lv.ita_max, inclusive="left")
                entry.update(ita_min=lv.ita_min, ita_max=lv.ita_max, target=lv.target,
                             # measured, not assumed: how many prototypes the measures place in the level's bin
                             prototypes_in_bin=int(inside.sum()),
                             in_bin_rate=float(inside.mean()) if len(protos) else 0.0,
                             prototype_ita_mean=float(protos["measured_skin_ita"].mean()) if protos["measured_ok"].any() else None)
            elif spec.attribute == "gender" and "measured_gender_pmale" in protos.columns:
                lv = next(x for x in spec.levels if x.name == name)
                pm = protos["measured_gender_pmale"].to_numpy(dtype=float)
                entry.update(p_male_min=lv.p_male_min, p_male_max=lv.p_male_max,
                             prototypes_in_bin=int(sum(lv.contains(x) for x in pm if np.isfinite(x))),
                             in_bin_rate=float(np.mean([lv.contains(x) for x in pm if np.isfinite(x)])) if np.isfinite(pm).any() else 0.0,
                             prototype_p_male_mean=float(np.nanmean(pm)) if np.isfinite(pm).any() else None)
            else:
                entry["measured_by"] = "nothing of its own: see the manipulation check (skin tone, perceived gender and age)"
            by_level[name if len(protocol.protected_specs) == 1 else f"{prefix}={name}"] = entry
    n = int(len(faces))
    return {
        "n_seeds_requested": protocol.n_seeds,
        "n_seeds_kept": int(faces["seed"].nunique()) if n else 0,
        "n_seeds_excluded": 0,
        "exclusions": [],
        "levels": by_level,
        "n_faces": n,
        "faces_without_landmarks": int((~faces["measured_ok"]).sum()) if n else 0,
        "images_rendered_and_measured": n,
        "seconds": round(seconds, 2),
        "images_per_second": round(n / seconds, 2) if seconds > 0 else None,
        "prompts": sorted(set(faces["prompt"])) if n else [],
        "generator": gen.metadata(),
    }
