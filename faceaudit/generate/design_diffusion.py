"""The generate stage for a diffusion generator: the paired design rendered from prompt slots.

For every batch of seeds and every protected level: the prototype (neutral ``{edit}`` phrase), then
each nuisance edit at each signed level, all from the seed's initial latent, the edits sharing the
prototype's self-attention (``identity_sharing``). Every image is measured with the same
:class:`~faceaudit.measure.FaceMeasurer` as the DCGAN's; nothing about a level is assumed from its
prompt: ``in_level`` records whether the measured skin ITA lies in the level's bin, and the
manipulation check reports achieved changes. An image in which no face is found is kept (its
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
from faceaudit.generate.design import FACE_COLUMNS, _remove_stale_images, encode_png, face_id
from faceaudit.generate.prompts import PromptBuilder
from faceaudit.measure import ALL_COLUMNS, FaceMeasurer
from faceaudit.protocol import Protocol
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
    levels = protocol.protected.levels
    edits = [Edit(e.attribute, float(v)) for e in protocol.edits for v in e.levels]
    g = protocol.generator
    # every prompt is built first: a missing phrase fails in a second, before the model loads
    PromptBuilder(g.prompt, g.slots, g.edit_phrases, g.neutral_phrase, g.negative_prompt).check(protocol.group_names, edits)
    gen = generator or build_generator(protocol)
    measurer = FaceMeasurer()
    seeds = list(range(protocol.n_seeds))
    records: list[dict[str, Any]] = []
    tables: list[pd.DataFrame] = []
    with progress_bar(progress) as bar:
        task = bar.add_task("generate: diffusion faces", total=len(seeds) * len(levels) * (1 + len(edits)))
        for start in range(0, len(seeds), gen.batch_size):
            batch = seeds[start : start + gen.batch_size]
            for lv in levels:
                group = f"skin={lv.name}"
                for edit in [Edit()] + edits:
                    result = gen.render(batch, group, None if edit.attribute == "none" else edit)
                    measures = measurer.measure(result.images)
                    ita = measures["measured_skin_ita"].to_numpy(dtype=np.float64)
                    for k, s in enumerate(batch):
                        data = encode_png(result.images[k])
                        rel = f"images/{face_id(s, lv.name, edit.attribute, edit.level)}.png"
                        write_bytes(run.root / rel, data)
                        records.append({
                            "face_id": face_id(s, lv.name, edit.attribute, edit.level), "seed": int(s), "group": group,
                            "skin_tone": lv.name, "edit_attr": edit.attribute, "edit_level": float(edit.level),
                            "path": rel, "sha256": sha256_bytes(data), "source": gen.name,
                            "prompt": str(result.metadata["prompt"].iloc[k]),
                            "in_level": bool(lv.ita_min <= ita[k] < lv.ita_max),
                        })
                    tables.append(measures)
                    bar.advance(task, len(batch))
            gen.release()
    faces = pd.DataFrame(records, columns=FACE_COLUMNS + PROMPT_COLUMNS)
    meas = pd.concat(tables, ignore_index=True) if tables else FaceMeasurer.empty_table()
    for c in ALL_COLUMNS:
        meas[c] = meas[c].astype(bool if c == "measured_ok" else np.float64)
    faces = pd.concat([faces.reset_index(drop=True), meas[ALL_COLUMNS].reset_index(drop=True)], axis=1)
    faces = faces[FACE_COLUMNS + ALL_COLUMNS + PROMPT_COLUMNS]
    seconds = time.perf_counter() - t0
    write_json(run.results / "generation.json", _summary(protocol, gen, faces, seconds))
    _remove_stale_images(run, set(faces["path"]))
    return faces


def _summary(protocol: Protocol, gen, faces: pd.DataFrame, seconds: float) -> dict[str, Any]:
    by_level = {}
    for lv in protocol.protected.levels:
        rows = faces[faces["skin_tone"] == lv.name]
        protos = rows[rows["edit_attr"] == "none"]
        by_level[lv.name] = {
            "ita_min": lv.ita_min, "ita_max": lv.ita_max, "target": lv.target,
            "phrase": gen.prompts.slots.get("skin", {}).get(lv.name),
            "faces": int(len(rows)),
            "faces_without_landmarks": int((~rows["measured_ok"]).sum()),
            # measured, not assumed: how many prototypes the measures place in the level's bin
            "prototypes_in_bin": int(protos["in_level"].sum()),
            "in_bin_rate": float(protos["in_level"].mean()) if len(protos) else 0.0,
            "prototype_ita_mean": float(protos["measured_skin_ita"].mean()) if protos["measured_ok"].any() else None,
        }
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
