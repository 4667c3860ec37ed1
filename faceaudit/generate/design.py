"""The generate stage: the paired experimental design rendered as images plus the faces table.

For every requested seed (0 .. n_seeds-1):

1. base latent ``z0`` (deterministic per protocol seed and face seed);
2. for every protected skin level, the skin search of :mod:`faceaudit.generate.editing` finds a shift
   along the skin direction whose measured ITA lies in the level's bin; that face is the seed's
   *prototype* in group ``skin=<level>``. A seed that cannot reach **every** level is excluded from
   all groups (the paired design needs every kept seed in every group);
   With ``generator.exposure_tolerance`` set (default 5/255), the search also holds the border luma
   of every prototype near the seed's own face, so the levels differ in skin, not in exposure.
   With ``protected.mechanism: recolor`` the prototypes are instead the seed's own face with its
   skin pixels recoloured (:mod:`faceaudit.generate.recolor`); nothing else in the image changes;
3. for every nuisance edit and signed level: ``prototype + level * step * unit`` (one step = one SD
   of the attribute's measure on average, conditional direction); the exposure edit is applied to
   the prototype's pixels instead (:mod:`faceaudit.generate.photometric`).

Every image is measured and its achieved measures recorded. Work is done in chunks of seeds; each
finished chunk leaves its rows under ``RUN/.partial/`` (keyed by everything that determines it),
so an interrupted run resumes where it stopped. The folder is removed once the table is complete.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from faceaudit.errors import BadInput
from faceaudit.generate.batching import progress_bar, render_and_measure
from faceaudit.generate.dcgan import DCGANGenerator
from faceaudit.generate.directions import Directions, default_directions_path, load_directions
from faceaudit.generate.editing import SKIN_ATTRIBUTE, search_skin_levels
from faceaudit.generate.photometric import PIXEL_EDITS, apply_exposure
from faceaudit.measure import ALL_COLUMNS, MEASURE_VERSION, FaceMeasurer
from faceaudit.measure.parallel import PooledMeasurer, measure_workers
from faceaudit.protocol import Protocol
from faceaudit.rundir import RunDir, read_table, sha256_bytes, sha256_file, sha256_json, write_bytes, write_json, write_table

#: seeds per resumable chunk
CHUNK_SEEDS = 25
#: fixed PNG settings: same pixels -> same bytes (zlib level and filter are part of the output)
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 6]
PARTIAL_DIR = ".partial"
DESIGN_VERSION = "2"

#: how each prototype was reached (latent distances along the chroma, skin and border-luma unit
#: directions; with the recolor mechanism, skin_shift is the recolouring's change of skin L*)
DESIGN_COLUMNS = ["chroma_shift", "skin_shift", "exposure_shift", "skin_search_steps"]
FACE_COLUMNS = ["face_id", "seed", "group", "skin_tone", "edit_attr", "edit_level", "path", "sha256", "source"]


def format_level(level: float) -> str:
    """``+1.0``, ``-2.0``, ``+0.5``, ``+1.25``: one decimal unless more are needed."""
    return f"{level:+.1f}" if round(level, 1) == level else f"{level:+g}"


def face_id(seed: int, skin_level: str, edit_attr: str = "none", edit_level: float = 0.0) -> str:
    if edit_attr == "none":
        return f"s{seed:05d}_{skin_level}_none_0"
    return f"s{seed:05d}_{skin_level}_{edit_attr}_{format_level(edit_level)}"


def encode_png(image_rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), PNG_PARAMS)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _directions_for(protocol: Protocol) -> tuple[Directions, Path]:
    path = Path(protocol.generator.directions) if protocol.generator.directions else default_directions_path()
    directions = load_directions(path)
    needed = [SKIN_ATTRIBUTE] + [e.attribute for e in protocol.edits if e.attribute not in PIXEL_EDITS]
    missing = [a for a in needed if a not in directions.attributes]
    if missing:
        raise BadInput(f"{path}: directions file has no direction for {missing}")
    return directions, path


def _chunk_rows(
    gen: DCGANGenerator,
    measurer: FaceMeasurer,
    protocol: Protocol,
    directions: Directions,
    seeds: list[int],
    run: RunDir,
    bar: Any,
    tasks: dict[str, int],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    levels = protocol.protected.levels
    edits = [(e.attribute, float(v)) for e in protocol.edits for v in e.levels]
    z0 = gen.latents(seeds)
    base_images, base_measures = render_and_measure(gen, measurer, z0)
    if protocol.protected.mechanism == "recolor":
        from faceaudit.generate.recolor import recolor_skin_levels

        found = recolor_skin_levels(
            measurer, z0, base_images, base_measures, levels, protocol.generator.max_skin_steps,
            on_resolved=lambda k: bar.advance(tasks["search"], k),
        )
    else:
        found = search_skin_levels(
            gen,
            measurer,
            z0,
            levels,
            directions,
            protocol.generator.max_skin_steps,
            base_images=base_images,
            base_measures=base_measures,
            on_resolved=lambda k: bar.advance(tasks["search"], k),
            exposure_tolerance=protocol.generator.exposure_tolerance,
        )
    kept = found.success.all(axis=1)
    excluded = []
    for i, s in enumerate(seeds):
        for j, lv in enumerate(levels):
            if not found.success[i, j]:
                excluded.append({"seed": s, "level": lv.name, "reason": str(found.reasons[i, j]), "steps": int(found.steps[i, j])})
    # unreachable pairs never resolve; advance the bar past them
    bar.advance(tasks["search"], int((~found.success).sum()))

    records: list[dict[str, Any]] = []
    pixel_edits: list[tuple[int, int, int, str, float]] = []  # (slot, seed index, level index, attr, level)
    images: list[np.ndarray] = []
    measure_rows: list[pd.Series | None] = []
    edit_latents: list[np.ndarray] = []
    edit_slots: list[int] = []
    edit_cells: list[tuple[int, int]] = []  # (seed index, level index) of each edit latent
    for i, s in enumerate(seeds):
        if not kept[i]:
            continue
        for j, lv in enumerate(levels):
            common = {
                "seed": int(s),
                "group": f"skin={lv.name}",
                "skin_tone": lv.name,
                "chroma_shift": float(found.chroma_shifts[i]),
                "skin_shift": float(found.shifts[i, j]),
                "exposure_shift": float(found.exposure_shifts[i, j]),
                "skin_search_steps": int(found.steps[i, j]),
            }
            records.append({**common, "face_id": face_id(s, lv.name), "edit_attr": "none", "edit_level": 0.0})
            images.append(found.images[i, j])
            measure_rows.append(found.measures[i][j])
            z_proto = found.latents[i, j]
            for attr, level in edits:
                records.append({**common, "face_id": face_id(s, lv.name, attr, level), "edit_attr": attr, "edit_level": level})
                images.append(None)  # type: ignore[arg-type]
                measure_rows.append(None)
                if attr in PIXEL_EDITS:
                    pixel_edits.append((len(records) - 1, i, j, attr, level))
                    continue
                edit_latents.append(z_proto + directions.shift(attr, level))
                edit_slots.append(len(records) - 1)
                edit_cells.append((i, j))
    bar.advance(tasks["faces"], len(records) - len(edit_slots) - len(pixel_edits))
    if pixel_edits:
        # photometric edits of the prototype's pixels (with the recolor mechanism, of the recoloured face)
        pix = np.stack([apply_exposure(found.images[i, j], level) for _, i, j, _, level in pixel_edits])
        pix_measures = measurer.measure(pix)
        bar.advance(tasks["faces"], len(pixel_edits))
        for k, (slot, *_rest) in enumerate(pixel_edits):
            images[slot] = pix[k]
            measure_rows[slot] = pix_measures.iloc[k]
    if edit_latents and found.recolor is not None:
        # recolor mechanism: the edited face gets its prototype's skin colour change
        from faceaudit.generate.recolor import recolor_edits

        edit_images = recolor_edits(
            gen.render_latents(np.stack(edit_latents)),
            np.stack([found.recolor[i, j] for i, j in edit_cells]),
            np.stack([found.landmarks[i] for i, _ in edit_cells]),
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

    df = pd.DataFrame(records)
    if len(df):
        meas = pd.DataFrame([r[ALL_COLUMNS].to_numpy() for r in measure_rows], columns=ALL_COLUMNS)
        for c in ALL_COLUMNS:
            meas[c] = meas[c].astype(bool if c == "measured_ok" else np.float64)
        paths, hashes = [], []
        for fid, img in zip(df["face_id"], images):
            data = encode_png(img)
            rel = f"images/{fid}.png"
            write_bytes(run.root / rel, data)
            paths.append(rel)
            hashes.append(sha256_bytes(data))
        df["path"] = paths
        df["sha256"] = hashes
        df["source"] = gen.name
        df = pd.concat([df.reset_index(drop=True), meas], axis=1)
    else:
        df = pd.DataFrame(columns=FACE_COLUMNS + ALL_COLUMNS + DESIGN_COLUMNS)
    df = df[FACE_COLUMNS + ALL_COLUMNS + DESIGN_COLUMNS]
    info = {
        "seeds": [int(s) for s in seeds],
        "kept": [int(s) for s, k in zip(seeds, kept) if k],
        "excluded": excluded,
        "reached": {lv.name: int(found.success[:, j].sum()) for j, lv in enumerate(levels)},
        "steps": {lv.name: [int(x) for x in found.steps[:, j]] for j, lv in enumerate(levels)},
        "warmed": int((found.chroma_shifts > 0).sum()),
        "images_rendered": int(len(seeds) + (found.chroma_shifts > 0).sum() + found.steps.sum() + len(edit_latents) + len(pixel_edits)),
    }
    return df, info


def _design_key(protocol: Protocol, directions_path: Path, gen: DCGANGenerator) -> str:
    return sha256_json(
        {
            "design_version": DESIGN_VERSION,
            "measure_version": MEASURE_VERSION,
            "seed": protocol.seed,
            "generator": protocol.generator.model_dump(),
            "protected": protocol.protected.model_dump(),
            "edits": [e.model_dump() for e in protocol.edits],
            "directions": sha256_file(directions_path),
            "model": f"{gen.name}:{gen.version}:{gen.device}",
            "chunk_seeds": CHUNK_SEEDS,
        }
    )


def _load_partial(table: Path, meta: Path, key: str, run: RunDir) -> tuple[pd.DataFrame, dict] | None:
    if not (table.exists() and meta.exists()):
        return None
    try:
        info = json.loads(meta.read_text())
        if info.get("key") != key:
            return None
        df = read_table(table)
    except (OSError, ValueError):
        return None
    if not all((run.root / p).exists() for p in df["path"]):
        return None
    return df, info


def generate_faces(protocol: Protocol, run_root: str | Path, progress: bool = True,
                   keep_partial: bool = False) -> pd.DataFrame:
    """Render and measure the protocol's design; write ``images/`` and ``results/generation.json``.

    Returns the faces table (docs/ARCHITECTURE.md); the caller writes ``faces.parquet``.
    ``keep_partial``: leave the finished chunks under ``RUN/.partial/`` for the caller to remove once
    it has recorded the faces table (the pipeline), so a kill before that resumes from them instead
    of rendering every chunk again.
    """
    if protocol.generator.name == "diffusion":  # prompt slots, no latent directions: its own room
        from faceaudit.generate.design_diffusion import generate_diffusion_faces

        return generate_diffusion_faces(protocol, run_root, progress=progress)
    t0 = time.perf_counter()
    run = RunDir(run_root)
    run.root.mkdir(parents=True, exist_ok=True)
    directions, directions_path = _directions_for(protocol)
    # measuring workers start before the generator runs any torch op (see faceaudit.measure.parallel)
    n_planned = protocol.n_seeds * len(protocol.protected.levels) * (1 + sum(len(e.levels) for e in protocol.edits))
    workers = measure_workers(n_planned)
    measurer = PooledMeasurer(workers) if workers > 1 else FaceMeasurer()
    try:
        gen = DCGANGenerator(
            protocol_seed=protocol.seed,
            truncation=protocol.generator.truncation,
            device=protocol.device,
            directions=directions,
            levels=protocol.protected.levels,
            max_skin_steps=protocol.generator.max_skin_steps,
        )
        return _generate(protocol, run, gen, measurer, directions, directions_path, progress, t0, keep_partial)
    finally:
        if isinstance(measurer, PooledMeasurer):
            measurer.close()


def _generate(protocol, run, gen, measurer, directions, directions_path, progress, t0, keep_partial=False) -> pd.DataFrame:
    key = _design_key(protocol, directions_path, gen)
    partial = run.root / PARTIAL_DIR
    seeds = list(range(protocol.n_seeds))
    levels = protocol.protected.levels
    n_edit_levels = sum(len(e.levels) for e in protocol.edits)
    tables, infos = [], []
    resumed = 0
    with progress_bar(progress) as bar:
        tasks = {
            "search": bar.add_task("generate: skin search", total=len(seeds) * len(levels)),
            "faces": bar.add_task("generate: faces", total=len(seeds) * len(levels) * (1 + n_edit_levels)),
        }
        for c, start in enumerate(range(0, len(seeds), CHUNK_SEEDS)):
            chunk = seeds[start : start + CHUNK_SEEDS]
            table_path, meta_path = partial / f"chunk{c:04d}.parquet", partial / f"chunk{c:04d}.json"
            loaded = _load_partial(table_path, meta_path, key, run)
            if loaded is not None:
                df, info = loaded
                resumed += 1
                bar.advance(tasks["search"], len(chunk) * len(levels))
            else:
                df, info = _chunk_rows(gen, measurer, protocol, directions, chunk, run, bar, tasks)
                write_table(table_path, df)
                write_json(meta_path, {**info, "key": key})
            # a seed excluded in the chunk still counts towards the planned total
            bar.advance(tasks["faces"], (len(chunk) - len(info["kept"])) * len(levels) * (1 + n_edit_levels) + (len(df) if loaded else 0))
            tables.append(df)
            infos.append(info)

    faces = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    seconds = time.perf_counter() - t0
    write_json(run.results / "generation.json", _summary(protocol, gen, directions, directions_path, faces, infos, seconds, resumed))
    _remove_stale_images(run, set(faces["path"]) if len(faces) else set())
    if not keep_partial:
        shutil.rmtree(partial, ignore_errors=True)
    return faces


def _summary(protocol, gen, directions, directions_path, faces, infos, seconds, resumed) -> dict[str, Any]:
    levels = protocol.protected.levels
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
            **_exposure_change(faces, lv.name, protocol.protected.reference),
        }
    rendered = sum(info["images_rendered"] for info in infos)
    return {
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


def _exposure_change(faces: pd.DataFrame, level: str, reference: str) -> dict[str, Any]:
    """Within-seed change of the prototype's border luma (/255) from the reference level's prototype."""
    if not len(faces) or "measured_border_luma" not in faces.columns:
        return {}
    protos = faces[faces["edit_attr"] == "none"].set_index(["skin_tone", "seed"])["measured_border_luma"]
    if level not in protos.index.get_level_values(0) or reference not in protos.index.get_level_values(0):
        return {}
    delta = (protos.loc[level] - protos.loc[reference]).dropna()
    if not len(delta):
        return {}
    return {
        "border_luma_change_mean": float(delta.mean()),
        "border_luma_change_mean_abs": float(delta.abs().mean()),
        "border_luma_change_max_abs": float(delta.abs().max()),
    }


def _remove_stale_images(run: RunDir, keep: set[str]) -> None:
    """Delete PNGs of an earlier design that this table no longer references."""
    if not run.images.exists():
        return
    for f in run.images.glob("*.png"):
        if f"images/{f.name}" not in keep:
            f.unlink()
