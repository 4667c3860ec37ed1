"""Perceived race (GEAR) as the ``in_level`` check of a prompted race level: the protocol's
``race_classes`` mapping, the check on real photographs, a tiny-diffusion run (noise: no face), the
race columns of a quick audit and the card's caveat."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from faceaudit.core.errors import BadInput
from faceaudit.models import human_models


def _race(levels, **extra) -> dict:
    return {"attribute": "race", "reference": levels[-1], "levels": levels, **extra}


def _parse(race: dict):
    from faceaudit.protocol import parse_protocol

    return parse_protocol({
        "name": "r", "seed": 0, "n_seeds": 2, "protected": [race, {"attribute": "gender", "reference": "male"}],
        "generator": {"name": "diffusion", "model": "m", "prompt": "{race} {gender}, {edit}",
                      "slots": {"race": {lv: lv for lv in race["levels"]}, "gender": {"female": "woman", "male": "man"}}},
        "edits": [{"attribute": "yaw", "levels": [-1, 1]}], "models": ["sface"],
    })


def test_race_classes_defaults_explicit_and_errors():
    spec = _parse(_race(["black", "east_asian", "latino", "white"])).protected_spec("race")
    assert spec.measured_classes == {"black": "black", "east_asian": "asian", "latino": None, "white": "white"}
    spec = _parse(_race(["black", "latino", "white"], race_classes={"latino": "other", "white": None})).protected_spec("race")
    assert spec.measured_classes == {"black": "black", "latino": "other", "white": None}
    with pytest.raises(BadInput, match="race_classes.*hispanic"):
        _parse(_race(["black", "white"], race_classes={"black": "hispanic"}))
    with pytest.raises(BadInput, match="race_classes.*not levels"):
        _parse(_race(["black", "white"], race_classes={"asian": "asian"}))
    # the shipped photoreal protocol's three levels all map by default
    from faceaudit.protocol import load_protocol

    shipped = load_protocol(Path(__file__).resolve().parents[1] / "protocols" / "photoreal-race-gender.yaml")
    assert shipped.protected_spec("race").measured_classes == {"black": "black", "asian": "asian", "white": "white"}


def test_in_level_follows_gears_top_class_on_real_faces():
    """The diffusion design's check, fed GEAR's real output on the six t1.jpg faces: a face is in a
    race level exactly when GEAR's most probable class is the level's class; an unmapped level gives
    no verdict (None), whatever else the cell says."""
    if human_models.missing_reason("gear"):
        pytest.skip(human_models.missing_reason("gear"))
    from _t1 import t1_faces

    from faceaudit.generate.diffusion.design import _in_level, _level_checks
    from faceaudit.measure.gear import race_columns, top_class

    rows = race_columns(t1_faces(), "cpu", required=True)
    top = top_class(rows)
    assert top.notna().all() and top.nunique() >= 2  # measured: asian, asian, white, white, white|asian, white
    checks = _level_checks(_parse(_race(["black", "asian", "latino", "white"])))
    for k in range(len(rows)):
        row = rows.iloc[k]
        for level, cls in (("black", "black"), ("asian", "asian"), ("white", "white")):
            assert _in_level(checks, {"race": level}, row) is (top.iloc[k] == cls)
        assert _in_level(checks, {"race": "latino"}, row) is None
    # a faceless row (NaN probabilities) is measured and out of every mapped level
    nan_row = pd.Series(np.nan, index=rows.columns)
    assert _in_level(checks, {"race": "white"}, nan_row) is False


def test_tiny_diffusion_run_race_columns_and_in_level(tmp_path, session_cache):
    """A prompted race x gender design on the tiny pipeline (noise, no faces): every face gets the
    GEAR columns (NaN: no face, no crash), mapped cells are measured and out of level, the cells of
    the unmapped level have no verdict, and generation.json says how each level was checked."""
    pytest.importorskip("diffusers")
    for graph in ("gear", "faceres", "gender", "age"):
        if human_models.missing_reason(graph):
            pytest.skip(human_models.missing_reason(graph))
    from _tiny_diffusion import build_tiny_pipeline

    from faceaudit.generate.diffusion.design import generate_diffusion_faces
    from faceaudit.measure.gear import COLUMNS
    from faceaudit.protocol import parse_protocol

    tiny = build_tiny_pipeline(tmp_path / "tiny-sd")
    proto = parse_protocol({
        "name": "tiny-race", "seed": 0, "n_seeds": 2, "device": "cpu",
        "generator": {"name": "diffusion", "model": str(tiny), "resolution": 32, "steps": 2, "guidance": 5.0,
                      "prompt": "{race} {gender}, {edit}", "neutral_phrase": "frontal",
                      "slots": {"race": {"black": "black", "latino": "latino", "white": "white"},
                                "gender": {"female": "woman", "male": "man"}},
                      "edit_phrases": {"yaw": {"-1": "left", "+1": "right"}}},
        "protected": [_race(["black", "latino", "white"]), {"attribute": "gender", "reference": "male"}],
        "edits": [{"attribute": "yaw", "levels": [-1, 1]}], "models": ["sface"],
    })
    faces = generate_diffusion_faces(proto, tmp_path / "run", progress=False)
    assert set(COLUMNS) <= set(faces.columns) and len(faces) == 2 * 6 * 3
    assert faces[COLUMNS].isna().all().all()
    latino = faces["race"] == "latino"
    assert faces.loc[latino, "in_level"].isna().all()
    assert (faces.loc[~latino, "in_level"] == False).all()  # noqa: E712 (a nullable boolean column)
    gen = json.loads((tmp_path / "run" / "results" / "generation.json").read_text())
    assert gen["levels"]["race=black"]["race_class"] == "black"
    assert gen["levels"]["race=black"]["prototypes_in_class"] == 0
    assert "maps to no GEAR class" in gen["levels"]["race=latino"]["measured_by"]


def test_quick_audit_has_race_and_monk_columns_and_the_card_caveat(quick_run):
    from faceaudit.measure.gear import COLUMNS, RACE_COLUMNS
    from faceaudit.report.evaluation import RACE_CAVEAT

    faces = pd.read_parquet(quick_run / "faces.parquet")
    assert set(COLUMNS) <= set(faces.columns) and "measured_monk" in faces.columns
    found = faces["measured_face_score"].notna()  # YuNet found a face (what GEAR crops from)
    # DCGAN designs run GEAR on the prototypes only (docs/measures.md: its cost on every edited face)
    prototype = faces["edit_attr"] == "none"
    assert (found & prototype).sum() > 0
    assert faces.loc[found & prototype, COLUMNS].notna().all().all()
    assert faces.loc[~prototype, COLUMNS].isna().all().all()
    assert np.allclose(faces.loc[found & prototype, RACE_COLUMNS].sum(axis=1), 1, atol=1e-4)
    ok = faces["measured_ok"]
    assert faces.loc[ok, "measured_monk"].isin(range(1, 11)).all() and faces.loc[~ok, "measured_monk"].isna().all()
    # the skin levels are ordered in Monk as in ITA (light < intermediate < dark in Monk class)
    monk = faces[faces["edit_attr"] == "none"].groupby("skin_tone")["measured_monk"].mean()
    assert monk["light"] < monk["intermediate"] < monk["dark"]
    mc = pd.read_parquet(quick_run / "results" / "manipulation_check.parquet")
    assert {"monk_mean", "monk_median", "monk_changed"} <= set(mc["measure"])
    html = (quick_run / "report.html").read_text()
    assert "Monk class changed, by level" in html and "Monk, mean (1-10)" in html
    assert "Monk Skin Tone of prototypes (mean; median)" in html  # beside ITA in the skin-tone table
    # GEAR race probabilities are among the manipulation check's rows, so the caveat is on the card
    assert "Perceived race (GEAR): indicative, not ground truth." in html
    assert "an indicative signal, not ground truth" in html  # beside the long table too
    assert RACE_CAVEAT.startswith("Perceived race is the output of GEAR")
