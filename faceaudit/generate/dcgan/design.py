"""The DCGAN's generate stage: the paired experimental design rendered as images plus the faces table.

For every requested seed (0 .. n_seeds-1):

1. base latent ``z0`` (deterministic per protocol seed and face seed);
2. for every protected skin level, the skin search of :mod:`faceaudit.generate.dcgan.editing` finds a shift
   along the skin direction whose measured ITA lies in the level's bin; that face is the seed's
   *prototype* in group ``skin=<level>``. A seed that cannot reach **every** level is excluded from
   all groups (the paired design needs every kept seed in every group);
   With ``generator.exposure_tolerance`` set (default 5/255), the search also holds the border luma
   of every prototype near the seed's own face, so the levels differ in skin, not in exposure.
   With ``protected.mechanism: recolor`` the prototypes are instead the seed's own face with its
   skin pixels recoloured (:mod:`faceaudit.generate.dcgan.recolor`); nothing else in the image changes.
   With perceived gender protected too, one joint search places every seed in every skin x gender
   cell (:mod:`faceaudit.generate.dcgan.joint_placement`: ITA, the placing classifier's P(male) and
   the border luma at once); the faces table records the placing and the validating classifier;
3. for every nuisance edit and signed level: ``prototype + level * step * unit`` (one step = one SD
   of the attribute's measure on average, conditional direction); the exposure edit is applied to
   the prototype's pixels instead (:mod:`faceaudit.generate.photometric`).

Every image is measured and its achieved measures recorded. Work is done in chunks of
:data:`CHUNK_SEEDS` seeds by the shared chunk driver (:mod:`faceaudit.generate.chunks`): each
finished chunk leaves its rows under ``RUN/.partial/`` (keyed by everything that determines it),
so an interrupted run resumes where it stopped, and chunks can run on an executor.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from faceaudit.core.errors import BadInput
from faceaudit.core.hashing import sha256_json
from faceaudit.core.progress import Progress
from faceaudit.generate.chunks import Chunk, finish_chunks, run_chunks, split_seeds
from faceaudit.generate.dcgan.batching import render_and_measure
from faceaudit.generate.dcgan.directions import Directions, default_directions_path, load_directions
from faceaudit.generate.dcgan.editing import SKIN_ATTRIBUTE, SkinSearchResult, search_skin_levels
from faceaudit.generate.dcgan.generator import DCGANGenerator
from faceaudit.generate.faces import FACE_COLUMNS, GENDER_PLACEMENT_COLUMNS, PERCEIVED_COLUMNS, encode_png, face_id, needs_perceived, perceived_columns
from faceaudit.generate.photometric import apply_pixel_edit, is_pixel_edit
from faceaudit.measure import ALL_COLUMNS, COLUMN_DTYPES, MEASURE_VERSION, FaceMeasurer
from faceaudit.measure.gear import COLUMNS as GEAR_COLUMNS, race_columns
from faceaudit.measure.parallel import PooledMeasurer, measure_workers
from faceaudit.protocol import Protocol
from faceaudit.rundir import RunDir, sha256_bytes, sha256_file, write_json

#: seeds per resumable chunk
CHUNK_SEEDS = 25
DESIGN_VERSION = "2"
#: the crossed skin x gender design's placement (joint search since "joint1"; with the local-gradient finish since "joint2")
GENDER_PLACEMENT = "joint2"

#: how each prototype was reached (latent distances along the chroma, skin and border-luma unit
#: directions; with the recolor mechanism, skin_shift is the recolouring's change of skin L*)
DESIGN_COLUMNS = ["chroma_shift", "skin_shift", "exposure_shift", "skin_search_steps"]


def _directions_for(protocol: Protocol) -> tuple[Directions, Path]:
    path = Path(protocol.generator.directions) if protocol.generator.directions else default_directions_path()
    directions = load_directions(path)
    needed = [SKIN_ATTRIBUTE] + [e.attribute for e in protocol.edits if not is_pixel_edit(e.attribute)]
    # placed_by: oarriaga moves along ``gender_oarriaga`` where the file has it, else along ``gender``
    needed += [p.attribute for p in protocol.protected_specs if p.attribute == "gender"]
    missing = [a for a in needed if a not in directions.attributes]
    if missing:
        raise BadInput(f"{path}: directions file has no direction for {missing}")
    return directions, path


def _place_prototypes(gen, measurer, perceived, protocol: Protocol, directions: Directions, z0: np.ndarray,
                      base_images: np.ndarray, base_measures: pd.DataFrame, bar: Any, tasks: dict[str, int]):
    """Every seed in every protected cell: ``([(gender level or None, SkinSearchResult)], gender search or None)``.

    Without a gender attribute there is one entry (the skin search, or the recolouring). With gender
    and the latent mechanism, one joint search places each seed in all skin x gender cells
    (:mod:`faceaudit.generate.dcgan.joint_placement`); each gender level's entry carries its cells'
    ``gender_shifts``. With gender and the recolor mechanism the gender search moves the latent first
    (:mod:`faceaudit.generate.dcgan.gender_search`) and the skin is recoloured on each gender-placed face.
    """
    skin = protocol.skin
    gspec = protocol.protected_spec("gender")
    on_resolved = lambda k: bar.advance(tasks["search"], k)  # noqa: E731
    if gspec is None:
        if skin.mechanism == "recolor":
            from faceaudit.generate.dcgan.recolor import recolor_skin_levels

            found = recolor_skin_levels(measurer, z0, base_images, base_measures, skin.levels,
                                        protocol.generator.max_skin_steps, on_resolved=on_resolved)
        else:
            found = search_skin_levels(gen, measurer, z0, skin.levels, directions, protocol.generator.max_skin_steps,
                                       base_images=base_images, base_measures=base_measures, on_resolved=on_resolved,
                                       exposure_tolerance=protocol.generator.exposure_tolerance)
        return [(None, found)], None
    if skin.mechanism == "recolor":
        return _recolor_gender_cells(gen, measurer, perceived, protocol, directions, z0, on_resolved)
    from faceaudit.generate.dcgan.joint_placement import place_cells

    gradient = None
    if gspec.placed_by == "faceres":
        # the local-gradient finish (faceres + GEAR, never the validation classifier); with
        # placed_by: oarriaga it would use faceres, which then validates, so there is none
        from faceaudit.generate.dcgan.gender_gradient import GenderLogitGradient

        gradient = GenderLogitGradient(gen, perceived.faceres)
    jp = place_cells(gen, measurer, perceived, z0, skin.levels, gspec.levels, directions,
                     protocol.generator.max_skin_steps + gspec.max_steps,
                     exposure_tolerance=protocol.generator.exposure_tolerance, placed_by=gspec.placed_by,
                     base_images=base_images, base_measures=base_measures, on_resolved=on_resolved,
                     gradient=gradient)
    placed = []
    for k, glv in enumerate(gspec.levels):
        found = SkinSearchResult(
            base_latents=jp.base_latents, chroma_shifts=jp.chroma_shifts, shifts=jp.skin_shifts[:, k],
            exposure_shifts=jp.exposure_shifts[:, k], latents=jp.latents[:, k], success=jp.success[:, k],
            steps=jp.steps[:, k], reasons=jp.reasons[:, k], images=jp.images[:, k],
            measures=[jp.measures[s][k] for s in range(len(z0))], gender_shifts=jp.gender_shifts[:, k],
            gender_local_shifts=jp.local_shifts[:, k])
        placed.append((glv, found))
    placed[0][1].probe_renders = jp.probe_renders
    return placed, None


def _recolor_gender_cells(gen, measurer, perceived, protocol, directions, z0, on_resolved):
    """Recolor mechanism with gender: the gender search places each level in the latent, then every
    gender-placed face is recoloured to each skin level (pixels only, so P(male) is re-measured by
    the classifiers on the final faces, not held)."""
    from faceaudit.generate.dcgan.gender_search import search_gender_levels
    from faceaudit.generate.dcgan.recolor import recolor_skin_levels

    gspec = protocol.protected_spec("gender")
    gfound = search_gender_levels(gen, perceived, z0, gspec.levels, directions, gspec.max_steps,
                                  placed_by=gspec.placed_by)
    u_g = directions["gender"].unit
    placed = []
    for k, glv in enumerate(gspec.levels):
        shift = np.nan_to_num(gfound.shifts[:, k])
        zb = z0 + shift[:, None] * u_g
        imgs, meas = render_and_measure(gen, measurer, zb)
        found = recolor_skin_levels(measurer, zb, imgs, meas, protocol.skin.levels, protocol.generator.max_skin_steps,
                                    on_resolved=on_resolved)
        found.gender_shifts = np.repeat(shift[:, None], len(protocol.skin.levels), axis=1)
        placed.append((glv, found))
    return placed, gfound


def _cell_name(skin_level: str, gender_level) -> str:
    return skin_level if gender_level is None else f"{skin_level}_{gender_level.name}"


def _chunk_rows(
    gen: DCGANGenerator,
    measurer: FaceMeasurer,
    protocol: Protocol,
    directions: Directions,
    seeds: list[int],
    bar: Progress,
    tasks: dict[str, int],
    perceived: Any = None,
) -> Chunk:
    """Render, measure and place one chunk of seeds: its rows, bookkeeping and PNG files."""
    levels = protocol.skin.levels
    gspec = protocol.protected_spec("gender")
    edits = [(e.attribute, float(v)) for e in protocol.edits for v in e.levels]
    z0 = gen.latents(seeds)
    base_images, base_measures = render_and_measure(gen, measurer, z0)
    placed, gfound = _place_prototypes(gen, measurer, perceived, protocol, directions, z0, base_images, base_measures,
                                       bar, tasks)
    kept = np.ones(len(seeds), dtype=bool)
    excluded = []
    if gfound is not None:
        for k, (glv, _) in enumerate(placed):
            for i, s in enumerate(seeds):
                if not gfound.success[i, k]:
                    kept[i] = False
                    excluded.append({"seed": s, "level": glv.name, "reason": str(gfound.reasons[i, k]),
                                     "steps": int(gfound.steps[i, k])})
    for k, (glv, found) in enumerate(placed):
        kept &= found.success.all(axis=1)
        for i, s in enumerate(seeds):
            if gfound is not None and not gfound.success[i, k]:
                continue  # counted above: the seed never reached this gender level
            for j, lv in enumerate(levels):
                if not found.success[i, j]:
                    excluded.append({"seed": s, "level": lv.name if glv is None else f"{lv.name}|{glv.name}",
                                     "reason": str(found.reasons[i, j]), "steps": int(found.steps[i, j])})
        # unreachable cells never resolve; advance the bar past them
        bar.advance(tasks["search"], int((~found.success).sum()))

    records: list[dict[str, Any]] = []
    pixel_edits: list[tuple[int, Any, int, int, str, float]] = []  # (slot, found, seed index, level index, attr, level)
    images: list[np.ndarray] = []
    measure_rows: list[pd.Series | None] = []
    edit_latents: list[np.ndarray] = []
    edit_slots: list[int] = []
    edit_cells: list[tuple[Any, int, int]] = []  # (found, seed index, level index) of each edit latent
    for i, s in enumerate(seeds):
        if not kept[i]:
            continue
        for glv, found in placed:
            for j, lv in enumerate(levels):
                cell = {"skin_tone": lv.name} if glv is None else {"skin_tone": lv.name, "gender": glv.name}
                common = {
                    "seed": int(s),
                    "group": protocol.cell_group(cell),
                    **cell,
                    "chroma_shift": float(found.chroma_shifts[i]),
                    "skin_shift": float(found.shifts[i, j]),
                    "exposure_shift": float(found.exposure_shifts[i, j]),
                    "skin_search_steps": int(found.steps[i, j]),
                }
                if glv is not None:
                    common["gender_shift"] = float(found.gender_shifts[i, j])
                    local = found.gender_local_shifts
                    common["gender_local_shift"] = float(local[i, j]) if local is not None else 0.0
                    common["gender_placed_by"] = gspec.placed_by
                    common["gender_validated_by"] = gspec.validated_by
                name = _cell_name(lv.name, glv)
                records.append({**common, "face_id": face_id(s, name), "edit_attr": "none", "edit_level": 0.0})
                images.append(found.images[i, j])
                measure_rows.append(found.measures[i][j])
                z_proto = found.latents[i, j]
                for attr, level in edits:
                    records.append({**common, "face_id": face_id(s, name, attr, level), "edit_attr": attr, "edit_level": level})
                    images.append(None)  # type: ignore[arg-type]
                    measure_rows.append(None)
                    if is_pixel_edit(attr):
                        pixel_edits.append((len(records) - 1, found, i, j, attr, level))
                        continue
                    edit_latents.append(z_proto + directions.shift(attr, level))
                    edit_slots.append(len(records) - 1)
                    edit_cells.append((found, i, j))
    bar.advance(tasks["faces"], len(records) - len(edit_slots) - len(pixel_edits))
    if pixel_edits:
        # photometric edits of the prototype's pixels (with the recolor mechanism, of the recoloured face)
        pix = np.stack([apply_pixel_edit(f.images[i, j], attr, level) for _, f, i, j, attr, level in pixel_edits])
        pix_measures = measurer.measure(pix)
        bar.advance(tasks["faces"], len(pixel_edits))
        for k, (slot, *_rest) in enumerate(pixel_edits):
            images[slot] = pix[k]
            measure_rows[slot] = pix_measures.iloc[k]
    if edit_latents and placed[0][1].recolor is not None:
        # recolor mechanism: the edited face gets its prototype's skin colour change
        from faceaudit.generate.dcgan.recolor import recolor_edits

        edit_images = recolor_edits(
            gen.render_latents(np.stack(edit_latents)),
            np.stack([f.recolor[i, j] for f, i, j in edit_cells]),
            np.stack([f.landmarks[i] for f, i, _ in edit_cells]),
        )
        edit_measures = measurer.measure(edit_images)
        bar.advance(tasks["faces"], len(edit_latents))
        for k, slot in enumerate(edit_slots):
            images[slot] = edit_images[k]
            measure_rows[slot] = edit_measures.iloc[k]
    elif edit_latents:
        edit_images, edit_measures = render_and_measure(gen, measurer, np.stack(edit_latents), bar, tasks["faces"])
        for k, slot in enumerate(edit_slots):
            images[slot] = edit_images[k]
            measure_rows[slot] = edit_measures.iloc[k]

    columns = face_columns(protocol)
    files: list[tuple[str, bytes]] = []
    df = pd.DataFrame(records)
    if len(df):
        meas = pd.DataFrame([r[ALL_COLUMNS].to_numpy() for r in measure_rows], columns=ALL_COLUMNS)
        for c in ALL_COLUMNS:
            meas[c] = meas[c].astype(COLUMN_DTYPES[c])
        parts = [df.reset_index(drop=True), meas]
        if perceived is not None:
            parts.append(perceived_columns(perceived.predict(images), placed_by=gspec.placed_by if gspec else "faceres"))
        # perceived race (GEAR): an indicative signal (docs/measures.md), measured on the prototypes
        # only: at ~32 ms a face it would cost minutes on every edited face of a default audit, and
        # DCGAN designs place no level by race (the edited faces' columns stay NaN)
        prototype = (df["edit_attr"] == "none").to_numpy()
        race = pd.DataFrame(np.nan, index=range(len(df)), columns=GEAR_COLUMNS)
        if prototype.any():
            race.loc[prototype] = race_columns([images[k] for k in np.flatnonzero(prototype)], protocol.device).to_numpy()
        parts.append(race)
        paths, hashes = [], []
        for fid, img in zip(df["face_id"], images):
            data = encode_png(img)
            rel = f"images/{fid}.png"
            files.append((rel, data))  # the chunk driver writes them into the run
            paths.append(rel)
            hashes.append(sha256_bytes(data))
        df["path"] = paths
        df["sha256"] = hashes
        df["source"] = gen.name
        df = pd.concat([df.reset_index(drop=True)] + parts[1:], axis=1)
    else:
        df = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    df = df[columns]
    gnames = [None] if placed[0][0] is None else [g.name for g, _ in placed]
    info = {
        "seeds": [int(s) for s in seeds],
        "kept": [int(s) for s, k in zip(seeds, kept) if k],
        "excluded": excluded,
        "reached": {lv.name: int(np.logical_and.reduce([f.success[:, j] for _, f in placed]).sum())
                    for j, lv in enumerate(levels)},
        "steps": {lv.name: [int(x) for _, f in placed for x in f.steps[:, j]] for j, lv in enumerate(levels)},
        # one warm-up per seed (the joint placement shares it between the gender levels)
        "warmed": int(sum((f.chroma_shifts > 0).sum() for _, f in (placed if gfound is not None else placed[:1]))),
        "images_rendered": int(len(seeds) + sum(f.steps.sum() for _, f in placed)
                               + sum((f.chroma_shifts > 0).sum() for _, f in (placed if gfound is not None else placed[:1]))
                               + getattr(placed[0][1], "probe_renders", 0) + len(edit_latents) + len(pixel_edits)),
    }
    if gspec is not None:
        g_ok = [gfound.success[:, k] if gfound is not None else np.ones(len(seeds), dtype=bool) for k in range(len(gnames))]
        # a seed reaches a gender level when it is placed in that level's cell at every skin level
        info["gender_reached"] = {g: int((g_ok[k] & f.success.all(axis=1)).sum()) for k, (g, (_, f)) in enumerate(zip(gnames, placed))}
        info["cells_reached"] = {f"{lv.name}|{g}": int((g_ok[k] & f.success[:, j]).sum())
                                 for k, (g, (_, f)) in enumerate(zip(gnames, placed)) for j, lv in enumerate(levels)}
        if gfound is not None:
            info["gender_steps"] = {g: [int(x) for x in gfound.steps[:, k]] for k, g in enumerate(gnames)}
            info["images_rendered"] += int(gfound.steps.sum()) + len(seeds) * len(gnames)
    return Chunk(df, info, files)


def face_columns(protocol: Protocol) -> list[str]:
    """The faces table's columns for this protocol's design."""
    gender = protocol.protected_spec("gender") is not None
    cols = FACE_COLUMNS[:4] + (["gender"] if gender else []) + FACE_COLUMNS[4:] + ALL_COLUMNS + DESIGN_COLUMNS
    if gender:
        cols += ["gender_shift", "gender_local_shift"] + GENDER_PLACEMENT_COLUMNS
    if needs_perceived(protocol):
        cols += PERCEIVED_COLUMNS
    return cols + GEAR_COLUMNS


def _design_key(protocol: Protocol, directions_path: Path, gen: DCGANGenerator) -> str:
    return sha256_json(
        {
            "design_version": DESIGN_VERSION,
            "measure_version": MEASURE_VERSION,
            "seed": protocol.seed,
            "generator": protocol.generator.model_dump(),
            # a single attribute is dumped as before, so a skin-only design keeps its key
            "protected": (protocol.protected.model_dump() if not isinstance(protocol.protected, list)
                          else [p.model_dump() for p in protocol.protected]),
            "edits": [e.model_dump() for e in protocol.edits],
            "directions": sha256_file(directions_path),
            "model": f"{gen.name}:{gen.version}:{gen.device}",
            "chunk_seeds": CHUNK_SEEDS,
            # how a crossed design places its cells (skin-only designs keep their key)
            **({"gender_placement": GENDER_PLACEMENT} if protocol.protected_spec("gender") is not None else {}),
        }
    )


def generate_faces(protocol: Protocol, run_root: str | Path, progress: bool = True,
                   keep_partial: bool = False, executor: Any = None) -> pd.DataFrame:
    """Render and measure the protocol's DCGAN design; write ``images/`` and ``results/generation.json``.

    Returns the faces table (docs/ARCHITECTURE.md); the caller writes ``faces.parquet``.
    ``keep_partial``: leave the finished chunks under ``RUN/.partial/`` for the caller to remove once
    it has recorded the faces table (the pipeline), so a kill before that resumes from them instead
    of rendering every chunk again. ``executor`` (faceaudit.harness.executors): render the chunks
    there, each worker holding one generator, measurer and classifier set; the driver writes every
    image and partial table, so the results are the same bytes as in this process
    (faceaudit.generate.chunks).
    """
    t0 = time.perf_counter()
    run = RunDir(run_root)
    run.root.mkdir(parents=True, exist_ok=True)
    directions, directions_path = _directions_for(protocol)
    # measuring workers start before the generator runs any torch op (see faceaudit.measure.parallel)
    n_planned = protocol.n_seeds * len(protocol.cells) * (1 + sum(len(e.levels) for e in protocol.edits))
    # with an executor the chunks' measuring happens on its workers; the driver measures nothing
    workers = measure_workers(n_planned) if executor is None else 1
    measurer = PooledMeasurer(workers) if workers > 1 else FaceMeasurer()
    try:
        gen = _build_generator(protocol, directions)
        perceived = _perceived_for(protocol)
        return _generate(protocol, run, gen, measurer, directions, directions_path, progress, t0, keep_partial, perceived,
                         executor)
    finally:
        if isinstance(measurer, PooledMeasurer):
            measurer.close()


def _build_generator(protocol: Protocol, directions: Directions) -> DCGANGenerator:
    return DCGANGenerator(protocol_seed=protocol.seed, truncation=protocol.generator.truncation, device=protocol.device,
                          directions=directions, levels=protocol.skin.levels, max_skin_steps=protocol.generator.max_skin_steps)


def _perceived_for(protocol: Protocol) -> Any:
    if not needs_perceived(protocol):
        return None
    from faceaudit.measure.perceived import PerceivedAttributes

    return PerceivedAttributes(device=protocol.device)


def _chunk_state(protocol_data: dict, directions_path: str) -> tuple:
    """An executor worker's state for rendering chunks: built once per worker (module level: picklable)."""
    from faceaudit.protocol import parse_protocol

    protocol = parse_protocol(protocol_data, where="protocol")
    directions = load_directions(directions_path)
    return protocol, _build_generator(protocol, directions), FaceMeasurer(), directions, _perceived_for(protocol)


def _chunk_job(state: tuple, seeds: list[int]) -> Chunk:
    """One chunk on a worker: its rows, bookkeeping and ``(path, PNG bytes)`` of every image."""
    protocol, gen, measurer, directions, perceived = state
    silent = Progress(enabled=False)
    tasks = {"search": silent.add_task("search", 0), "faces": silent.add_task("faces", 0)}
    return _chunk_rows(gen, measurer, protocol, directions, seeds, silent, tasks, perceived)


def _generate(protocol, run, gen, measurer, directions, directions_path, progress, t0, keep_partial=False,
              perceived=None, executor=None) -> pd.DataFrame:
    key = _design_key(protocol, directions_path, gen)
    seeds = list(range(protocol.n_seeds))
    levels = protocol.cells  # one skin search per seed and protected cell
    n_edit_levels = sum(len(e.levels) for e in protocol.edits)
    with Progress(progress) as bar:
        tasks = {
            "search": bar.add_task("generate: skin search", total=len(seeds) * len(levels)),
            "faces": bar.add_task("generate: faces", total=len(seeds) * len(levels) * (1 + n_edit_levels)),
        }

        def advance(chunk: list[int], df: pd.DataFrame, info: dict, how: str) -> None:
            if how != "rendered":  # a chunk rendered here advanced the bars while it ran
                bar.advance(tasks["search"], len(chunk) * len(levels))
                bar.advance(tasks["faces"], len(df), cached=how == "resumed")
            # a seed excluded in the chunk still counts towards the planned total
            bar.advance(tasks["faces"], (len(chunk) - len(info["kept"])) * len(levels) * (1 + n_edit_levels))

        done = run_chunks(
            run, key, split_seeds(seeds, CHUNK_SEEDS),
            lambda chunk: _chunk_rows(gen, measurer, protocol, directions, chunk, bar, tasks, perceived),
            executor=executor,
            worker_state=functools.partial(_chunk_state, protocol.model_dump(mode="json"), str(directions_path)),
            render_with_state=_chunk_job,
            on_chunk=advance,
        )
    faces = done.faces()
    seconds = time.perf_counter() - t0
    write_json(run.results / "generation.json",
               _summary(protocol, gen, directions, directions_path, faces, done.infos, seconds, done.resumed))
    finish_chunks(run, faces, keep_partial)
    return faces


def _summary(protocol, gen, directions, directions_path, faces, infos, seconds, resumed) -> dict[str, Any]:
    levels = protocol.skin.levels
    n_req = protocol.n_seeds
    kept = sorted(s for info in infos for s in info["kept"])
    excluded = [e for info in infos for e in info["excluded"]]
    by_level: dict[str, Any] = {}
    for lv in levels:
        reached = sum(info["reached"][lv.name] for info in infos)
        steps = [s for info in infos for s in info["steps"][lv.name]]
        reasons: dict[str, int] = {}
        for e in excluded:
            if e["level"] == lv.name:
                reasons[e["reason"]] = reasons.get(e["reason"], 0) + 1
        protos = faces[(faces["skin_tone"] == lv.name) & (faces["edit_attr"] == "none")] if len(faces) else faces
        by_level[lv.name] = {
            "ita_min": lv.ita_min,
            "ita_max": lv.ita_max,
            "target": lv.target,
            "seeds_reaching": reached,
            "reach_rate": reached / n_req if n_req else 0.0,
            "failures_by_reason": reasons,
            "mean_search_steps": float(np.mean(steps)) if steps else 0.0,
            "prototype_ita_mean": float(protos["measured_skin_ita"].mean()) if len(protos) else None,
            **_exposure_change(faces, lv.name, protocol.skin.reference),
        }
    rendered = sum(info["images_rendered"] for info in infos)
    extra: dict[str, Any] = {}
    gspec = protocol.protected_spec("gender")
    if gspec is not None:
        extra["gender_levels"] = _gender_summary(gspec, faces, infos, n_req)
        extra["gender_validation"] = gender_validation_agreement(faces, gspec) if len(faces) else {}
        if protocol.skin.mechanism != "recolor":
            from faceaudit.generate.dcgan import joint_placement as jpl

            extra["gender_placement"] = {
                "method": GENDER_PLACEMENT, "accept_margin": jpl.GENDER_ACCEPT_MARGIN,
                "local_finish": gspec.placed_by == "faceres", "local_steps": jpl.LOCAL_STEPS,
                "local_max_move": jpl.LOCAL_MAX_MOVE, "local_limit": jpl.LOCAL_LIMIT,
                "local_direction": "unit latent gradients of faceres' and GEAR's gender logits, summed" if gspec.placed_by == "faceres" else None,
                "prototypes_local_finish": int((faces.loc[faces["edit_attr"] == "none", "gender_local_shift"] > 0).sum()) if len(faces) else 0,
                "prototypes": int((faces["edit_attr"] == "none").sum()) if len(faces) else 0,
            }
        extra["cells_reached"] = {c: sum(info["cells_reached"][c] for info in infos) for c in infos[0]["cells_reached"]} if infos else {}
    return {
        **extra,
        "n_seeds_requested": n_req,
        "n_seeds_kept": len(kept),
        "n_seeds_excluded": n_req - len(kept),
        "kept_fraction": len(kept) / n_req if n_req else 0.0,
        "excluded_seeds": sorted({e["seed"] for e in excluded}),
        "exclusions": excluded,
        "levels": by_level,
        "n_faces": int(len(faces)),
        "seeds_warmed": sum(info.get("warmed", 0) for info in infos),
        "faces_without_landmarks": int((~faces["measured_ok"]).sum()) if len(faces) else 0,
        "images_rendered_and_measured": rendered,
        "seconds": round(seconds, 2),
        "images_per_second": round(rendered / seconds, 1) if seconds > 0 else None,
        "chunks_resumed": resumed,
        "generator": gen.metadata(),
        "directions": {"path": str(directions_path), "sha256": sha256_file(directions_path), **directions.metadata},
    }


def _gender_summary(gspec, faces: pd.DataFrame, infos: list[dict], n_req: int) -> dict[str, Any]:
    """Per gender level: seeds reaching it, and what both classifiers say of the kept prototypes."""
    out: dict[str, Any] = {}
    protos = faces[faces["edit_attr"] == "none"] if len(faces) else faces
    for lv in gspec.levels:
        reached = sum(info["gender_reached"][lv.name] for info in infos)
        p = protos[protos["gender"] == lv.name] if len(protos) else protos
        entry: dict[str, Any] = {"p_male_min": lv.p_male_min, "p_male_max": lv.p_male_max, "target": lv.target,
                                 "placed_by": gspec.placed_by, "validated_by": gspec.validated_by,
                                 "seeds_reaching": reached, "reach_rate": reached / n_req if n_req else 0.0}
        if len(p):
            pm = p["measured_gender_pmale"].to_numpy(dtype=float)
            entry["prototype_p_male_mean"] = float(np.nanmean(pm))
            entry["classified_as_level"] = float(np.mean([lv.contains(x) for x in pm if np.isfinite(x)]))
            pv = p["measured_gender_pmale_validation"].to_numpy(dtype=float)
            entry["validation_p_male_mean"] = float(np.nanmean(pv))
            entry["validation_classified_as_level"] = float(np.mean([lv.contains(x) for x in pv if np.isfinite(x)]))
            if "gender_local_shift" in p.columns:
                entry["prototypes_local_finish"] = int((p["gender_local_shift"].to_numpy(dtype=float) > 0).sum())
        out[lv.name] = entry
    return out


def gender_validation_agreement(faces: pd.DataFrame, gspec) -> dict[str, Any]:
    """Within-seed agreement of the validating classifier with the placement.

    For every non-reference gender level and every kept seed and skin level: does the validating
    classifier's P(male) differ from the reference level's prototype in the direction the levels'
    targets do (``P(male | male cell) > P(male | female cell)`` for the default levels)?

    Parameters
    ----------
    faces : DataFrame
        The faces table of a crossed skin x gender design.
    gspec : GenderSpec
        The protocol's gender spec.

    Returns
    -------
    dict
        ``placed_by``, ``validated_by``, and per level ``{share, n}`` plus the pooled ``share`` and ``n``;
        with a ``gender_local_shift`` column, also ``local_finish`` and ``directions_only``
        (``{hits, n, share}``: pairs where either prototype was, or neither was, finished along its
        local gradient).

    Examples
    --------
    >>> from faceaudit.protocol import GenderSpec
    >>> faces = pd.DataFrame({"edit_attr": "none", "seed": [0, 0, 1, 1], "skin_tone": "light",
    ...                       "gender": ["female", "male"] * 2,
    ...                       "measured_gender_pmale_validation": [0.2, 0.7, 0.6, 0.4]})
    >>> gender_validation_agreement(faces, GenderSpec(attribute="gender"))["share"]
    0.5
    """
    col = "measured_gender_pmale_validation"
    protos = faces[faces["edit_attr"] == "none"]
    pair = ["seed"] + [c for c in ("skin_tone",) if c in protos.columns]
    ref_level = next(lv for lv in gspec.levels if lv.name == gspec.reference)
    ref = protos[protos["gender"] == gspec.reference].set_index(pair)[col]
    out: dict[str, Any] = {"placed_by": gspec.placed_by, "validated_by": gspec.validated_by, "levels": {}}
    hits, total = 0, 0
    for lv in gspec.levels:
        if lv.name == gspec.reference:
            continue
        cur = protos[protos["gender"] == lv.name].set_index(pair)[col]
        d = (cur - ref).dropna()
        agree = int((np.sign(d) == np.sign(lv.target - ref_level.target)).sum())
        out["levels"][lv.name] = {"share": agree / len(d) if len(d) else None, "n": int(len(d))}
        hits, total = hits + agree, total + len(d)
        if "gender_local_shift" in protos.columns:
            # split by whether either prototype of the pair was finished along its local gradient
            local = protos.set_index(pair + ["gender"])["gender_local_shift"]
            either = (local.xs(lv.name, level="gender").reindex(d.index).fillna(0) > 0) | (
                local.xs(gspec.reference, level="gender").reindex(d.index).fillna(0) > 0)
            ok = np.sign(d) == np.sign(lv.target - ref_level.target)
            for key, rows in (("local_finish", either), ("directions_only", ~either)):
                part = out.setdefault(key, {"hits": 0, "n": 0})
                part["hits"] += int(ok[rows].sum())
                part["n"] += int(rows.sum())
    for key in ("local_finish", "directions_only"):
        if key in out:
            part = out[key]
            part["share"] = part["hits"] / part["n"] if part["n"] else None
    out["share"] = hits / total if total else None
    out["n"] = int(total)
    return out


def _exposure_change(faces: pd.DataFrame, level: str, reference: str) -> dict[str, Any]:
    """Within-seed change of the prototype's border luma (/255) from the reference level's prototype
    (within seed and gender level when gender is protected too)."""
    if not len(faces) or "measured_border_luma" not in faces.columns:
        return {}
    keys = ["skin_tone", "seed"] + (["gender"] if "gender" in faces.columns else [])
    protos = faces[faces["edit_attr"] == "none"].set_index(keys)["measured_border_luma"]
    if level not in protos.index.get_level_values(0) or reference not in protos.index.get_level_values(0):
        return {}
    delta = (protos.xs(level, level="skin_tone") - protos.xs(reference, level="skin_tone")).dropna()
    if not len(delta):
        return {}
    return {
        "border_luma_change_mean": float(delta.mean()),
        "border_luma_change_mean_abs": float(delta.abs().mean()),
        "border_luma_change_max_abs": float(delta.abs().max()),
    }
