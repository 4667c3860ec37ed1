"""The generate stage for a diffusion generator: the paired design rendered from prompt slots.

For every batch of seeds and every protected cell (one level of each protected attribute, e.g.
``race=black|gender=female``; each attribute fills its own prompt slot): the prototype (neutral ``{edit}`` phrase), then
each nuisance edit at each signed level, all from the seed's initial latent, the edits sharing the
prototype's self-attention (``identity_sharing``). Every image is measured with the same
:class:`~faceaudit.measure.FaceMeasurer` as the DCGAN's; nothing about a level is assumed from its
prompt: ``in_level`` records whether the measures put the image in its cell (skin: measured ITA in
the level's bin; gender: faceres P(male) in the level's bin; race: GEAR's most probable perceived-race
class is the level's ``race_classes`` entry, an indicative check; missing where no measure exists, as
for an age group or an unmapped race level), perceived race (GEAR) is measured on every face, perceived gender and age are measured by the classifiers whenever the design
prompts for gender, race, an age group or an age edit, and the manipulation check reports achieved changes. An image in which no face is found is kept (its
landmark measures are NaN, ``measured_ok`` False); the recognizers then mark it ``fte``, which the
error rates count per group, so a generator that fails one group more often shows up in the card.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from faceaudit.core.hashing import sha256_bytes, sha256_json
from faceaudit.core.progress import Progress
from faceaudit.generate.base import Edit
from faceaudit.generate.chunks import Chunk, finish_chunks, run_chunks, split_seeds
from faceaudit.generate.diffusion.prompts import PromptBuilder
from faceaudit.generate.faces import FACE_COLUMNS, PERCEIVED_COLUMNS, encode_png, face_id, needs_perceived, perceived_columns
from faceaudit.generate.photometric import apply_pixel_edit, is_pixel_edit
from faceaudit.measure import ALL_COLUMNS, COLUMN_DTYPES, MEASURE_VERSION, FaceMeasurer
from faceaudit.measure.gear import COLUMNS as GEAR_COLUMNS, race_columns, top_class
from faceaudit.protocol import FACES_COLUMN, GROUP_PREFIX, Protocol, level_names
from faceaudit.rundir import RunDir, write_json

#: columns only a prompted generator writes
PROMPT_COLUMNS = ["prompt", "in_level"]
#: pipeline batches per resumable chunk (a chunk is ``CHUNK_BATCHES * batch_size`` seeds)
CHUNK_BATCHES = 1
DESIGN_VERSION = "1"


def prompt_builder(protocol: Protocol) -> PromptBuilder:
    """The protocol's prompt slots and phrases (no model needed)."""
    g = protocol.generator
    return PromptBuilder(g.prompt, g.slots, g.edit_phrases, g.neutral_phrase, g.negative_prompt)


def check_prompts(protocol: Protocol) -> None:
    """Build every prompt of the design once: a missing phrase is a one-line BadInput before any
    model loads. Pixel edits (faceaudit.generate.photometric) need no phrase."""
    edits = [Edit(e.attribute, float(v)) for e in protocol.edits if not is_pixel_edit(e.attribute) for v in e.levels]
    prompt_builder(protocol).check(protocol.group_names, edits)


def build_generator(protocol: Protocol, batch_size: int | None = None):
    """The protocol's :class:`DiffusionGenerator` (``batch_size`` overrides the protocol's)."""
    from faceaudit.generate.diffusion.generator import DiffusionGenerator

    g = protocol.generator
    return DiffusionGenerator(
        model_id=g.model, protocol_seed=protocol.seed, device=protocol.device, resolution=g.resolution,
        num_inference_steps=g.steps, guidance_scale=g.guidance, identity_sharing=g.identity_sharing,
        batch_size=batch_size or g.batch_size, allow_download=g.allow_download, prompt=g.prompt,
        negative_prompt=g.negative_prompt, neutral_phrase=g.neutral_phrase, slots=g.slots, edit_phrases=g.edit_phrases,
        identity_adapter=g.identity_adapter.model_dump() if g.identity_adapter else None,
    )


def generate_diffusion_faces(protocol: Protocol, run_root: str | Path, progress: bool = True, generator=None,
                             keep_partial: bool = False, executor: Any = None) -> pd.DataFrame:
    """Render and measure the protocol's design with the diffusion generator; write ``images/`` and
    ``results/generation.json``; return the faces table (the caller writes ``faces.parquet``).

    Chunks of seeds (``CHUNK_BATCHES`` pipeline batches each) run through the shared chunk driver
    (faceaudit.generate.chunks): finished chunks are kept under ``RUN/.partial/`` so an interrupted
    stage resumes from them, ``keep_partial`` leaves them for the caller to remove, and with an
    ``executor`` each worker loads the pipeline once and renders whole chunks. ``generator``: an
    already loaded :class:`DiffusionGenerator` to render with in this process.
    """
    t0 = time.perf_counter()
    run = RunDir(run_root)
    run.root.mkdir(parents=True, exist_ok=True)
    # every prompt is built first: a missing phrase fails in a second, before the model loads
    check_prompts(protocol)
    state: tuple | None = None

    def local_state() -> tuple:
        nonlocal state
        if state is None:
            state = _build_state(protocol, generator)
        return state

    batch = protocol.generator.batch_size
    if batch is None:
        # chosen from free memory when the pipeline loads; the chunks (and their key) follow it
        batch = generator.batch_size if generator is not None else local_state()[0].batch_size
    seeds = list(range(protocol.n_seeds))
    chunks = split_seeds(seeds, CHUNK_BATCHES * batch)
    key = _design_key(protocol, batch)
    n_per_seed = len(protocol.cells) * (1 + sum(len(e.levels) for e in protocol.edits))
    with Progress(progress) as bar:
        task = bar.add_task("generate: diffusion faces", total=len(seeds) * n_per_seed)

        def advance(chunk: list[int], df: pd.DataFrame, info: dict, how: str) -> None:
            if how != "rendered":
                bar.advance(task, len(df), cached=how == "resumed")

        done = run_chunks(
            run, key, chunks,
            lambda chunk: _render_chunk(protocol, local_state(), chunk, bar, task),
            executor=executor,
            worker_state=functools.partial(_worker_state, protocol.model_dump(mode="json"), batch),
            render_with_state=_chunk_job,
            on_chunk=advance,
        )
    if state is not None:
        state[0].release()
    faces = _assemble(protocol, done.tables)
    meta = done.infos[0]["generator"] if done.infos else (state[0].metadata() if state is not None else {})
    seconds = time.perf_counter() - t0
    write_json(run.results / "generation.json", _summary(protocol, meta, faces, seconds, done.resumed))
    finish_chunks(run, faces, keep_partial)
    return faces


def _design_key(protocol: Protocol, batch_size: int) -> str:
    """Everything that determines a chunk's rows: the design, the model and adapter files, the batches."""
    from faceaudit.generate.diffusion.weights import render_inputs

    return sha256_json({
        **render_inputs(protocol.generator),
        "design_version": DESIGN_VERSION, "measure_version": MEASURE_VERSION, "seed": protocol.seed,
        "generator": protocol.generator.model_dump(), "protected": [p.model_dump() for p in protocol.protected_specs],
        "edits": [e.model_dump() for e in protocol.edits], "device": protocol.device, "batch_size": int(batch_size),
        "chunk_batches": CHUNK_BATCHES,
    })


def _build_state(protocol: Protocol, generator=None, batch_size: int | None = None) -> tuple:
    gen = generator or build_generator(protocol, batch_size)
    perceived = None
    if needs_perceived(protocol):
        from faceaudit.measure.perceived import PerceivedAttributes

        perceived = PerceivedAttributes(device=protocol.device)
    return gen, FaceMeasurer(), perceived


def _worker_state(protocol_data: dict, batch_size: int) -> tuple:
    """An executor worker's protocol, pipeline, measurer and classifiers: built once per worker
    (module level: picklable). ``batch_size`` is the driver's, so a chunk's batches are the same."""
    from faceaudit.protocol import parse_protocol

    protocol = parse_protocol(protocol_data, where="protocol")
    return protocol, _build_state(protocol, batch_size=batch_size)


def _chunk_job(state: tuple, seeds: list[int]) -> Chunk:
    """One chunk on an executor's worker."""
    protocol, worker = state
    silent = Progress(enabled=False)
    return _render_chunk(protocol, worker, seeds, silent, silent.add_task("faces", 0))


def _render_chunk(protocol: Protocol, state: tuple, seeds: list[int], bar: Progress, task: int) -> Chunk:
    """Every cell, prototype and edit of ``seeds``, batch by batch: rows (with measures), files, info.

    Pixel edits are applied to the batch's prototypes (faceaudit.generate.photometric); the
    generator renders the others, each right after its prototype (identity sharing needs that)."""
    gen, measurer, perceived = state
    cells = protocol.cells  # every combination of protected levels: one prompt slot per attribute
    edits = [Edit(e.attribute, float(v)) for e in protocol.edits for v in e.levels]
    checks = _level_checks(protocol)
    records: list[dict[str, Any]] = []
    tables: list[pd.DataFrame] = []
    files: list[tuple[str, bytes]] = []
    for start in range(0, len(seeds), gen.batch_size):
        batch = seeds[start : start + gen.batch_size]
        for cell in cells:
            group = protocol.cell_group(cell)
            name = "_".join(cell.values())
            proto = None
            for edit in [Edit()] + edits:
                if is_pixel_edit(edit.attribute):
                    # the photograph of the prototype changes, not what the generator renders
                    images = apply_pixel_edit(proto.images, edit.attribute, edit.level)
                    prompts = list(proto.metadata["prompt"])
                else:
                    result = gen.render(batch, group, None if edit.attribute == "none" else edit)
                    if edit.attribute == "none":
                        proto = result
                    images = result.images
                    prompts = list(result.metadata["prompt"])
                measures = measurer.measure(images).reset_index(drop=True)
                if perceived is not None:
                    measures = pd.concat([measures, perceived_columns(perceived.predict(list(images)))], axis=1)
                # perceived race (GEAR) on every face; required where it checks a race level
                measures = pd.concat([measures, race_columns(list(images), protocol.device, required=bool(_race_classes(protocol)))], axis=1)
                for k, s in enumerate(batch):
                    data = encode_png(images[k])
                    fid = face_id(s, name, edit.attribute, edit.level)
                    rel = f"images/{fid}.png"
                    files.append((rel, data))
                    records.append({
                        "face_id": fid, "seed": int(s), "group": group,
                        **{FACES_COLUMN[a]: v for a, v in cell.items()},
                        "edit_attr": edit.attribute, "edit_level": float(edit.level),
                        "path": rel, "sha256": sha256_bytes(data), "source": gen.name,
                        "prompt": str(prompts[k]),
                        # measured, not assumed from the prompt (None: no measure for any of the cell's attributes)
                        "in_level": _in_level(checks, cell, measures.iloc[k]),
                    })
                tables.append(measures)
                bar.advance(task, len(batch))
        gen.release()
    rows = _assemble_rows(protocol, records, tables)
    return Chunk(rows, {"seeds": [int(s) for s in seeds], "generator": gen.metadata()}, files)


def _base_columns(protocol: Protocol) -> list[str]:
    attr_cols = [FACES_COLUMN[p.attribute] for p in protocol.protected_specs]
    return FACE_COLUMNS[:3] + attr_cols + FACE_COLUMNS[4:]


def _assemble_rows(protocol: Protocol, records: list[dict], tables: list[pd.DataFrame]) -> pd.DataFrame:
    base_cols = _base_columns(protocol)
    faces = pd.DataFrame(records, columns=base_cols + PROMPT_COLUMNS)
    faces["in_level"] = faces["in_level"].astype("boolean")  # missing where nothing measures the level
    meas = pd.concat(tables, ignore_index=True) if tables else FaceMeasurer.empty_table()
    for c in ALL_COLUMNS:
        meas[c] = meas[c].astype(COLUMN_DTYPES[c])
    extra = [c for c in PERCEIVED_COLUMNS + GEAR_COLUMNS if c in meas.columns]
    faces = pd.concat([faces.reset_index(drop=True), meas[ALL_COLUMNS + extra].reset_index(drop=True)], axis=1)
    return faces[base_cols + ALL_COLUMNS + PROMPT_COLUMNS + extra]


def _assemble(protocol: Protocol, tables: list[pd.DataFrame]) -> pd.DataFrame:
    if tables:
        return pd.concat(tables, ignore_index=True)
    return _assemble_rows(protocol, [], [])


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
    race = _race_classes(protocol)
    if race:
        # GEAR's most probable class is the level's class; an unmapped level has no verdict (None)
        checks["race"] = (None, lambda name, row: None if race.get(name) is None else top_class(row.to_frame().T).iloc[0] == race[name])
    return checks


def _race_classes(protocol: Protocol) -> dict[str, str | None]:
    """Race level -> GEAR class (None: unmapped), empty without a prompted race."""
    spec = protocol.protected_spec("race")
    return spec.measured_classes if spec is not None else {}


def _in_level(checks: dict[str, Any], cell: dict[str, str], row: pd.Series) -> bool | None:
    """Whether the image's measures put it in every measurable level of its cell (None: no measure)."""
    verdicts = []
    for attr, level in cell.items():
        if attr not in checks:
            continue
        col, ok = checks[attr]
        if col is None:  # a check on the whole row (race: GEAR's top class); None = no verdict
            verdict = ok(level, row)
            if verdict is None:
                return None  # an unmapped race level: the cell cannot be checked as a whole
            verdicts.append(bool(verdict))
            continue
        x = float(row[col]) if col in row.index else float("nan")
        verdicts.append(bool(np.isfinite(x) and ok(level, x)))
    return all(verdicts) if verdicts else None


def _summary(protocol: Protocol, generator_meta: dict, faces: pd.DataFrame, seconds: float, resumed: int) -> dict[str, Any]:
    slots = prompt_builder(protocol).slots
    by_level = {}
    for spec in protocol.protected_specs:
        col = FACES_COLUMN[spec.attribute]
        prefix = GROUP_PREFIX[spec.attribute]
        for name in level_names(spec):
            rows = faces[faces[col] == name]
            protos = rows[rows["edit_attr"] == "none"]
            entry: dict[str, Any] = {
                "attribute": spec.attribute,
                "phrase": slots.get(prefix, {}).get(name),
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
            elif spec.attribute == "race" and spec.measured_classes.get(name) is not None:
                cls = spec.measured_classes[name]
                top = top_class(protos)
                measured = top.notna()
                entry.update(measured_by=f"GEAR perceived race, top class {cls!r} (indicative, not ground truth)",
                             race_class=cls, prototypes_in_class=int((top == cls).sum()),
                             in_class_rate=float((top[measured] == cls).mean()) if measured.any() else None)
            elif spec.attribute == "race":
                entry["measured_by"] = (f"nothing: race level {name!r} maps to no GEAR class (set protected race_classes); "
                                        "see the manipulation check (skin tone, perceived gender and age)")
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
        "chunks_resumed": resumed,
        "generator": generator_meta,
    }
