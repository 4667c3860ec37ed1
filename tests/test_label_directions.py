"""`faceaudit directions fit --labels`: directions for human-labelled attributes.

The rated faces' latents are rebuilt from the faces table and must render the very PNGs the
generate stage wrote; a planted direction must be recovered from noisy ordinal labels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from faceaudit.core.errors import BadInput
from faceaudit.generate.dcgan.directions import load_directions
from faceaudit.generate.dcgan.label_directions import face_latents, fit_direction

TINY = """name: tiny-labels
seed: 5
n_seeds: 3
protected: {attribute: skin_tone, reference: light}
edits:
  - {attribute: lighting, levels: [-1, 1]}
  - {attribute: smile, levels: [2]}
models: [dlib]
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from faceaudit import api

    root = tmp_path_factory.mktemp("labels")
    (root / "tiny.yaml").write_text(TINY)
    api.generate(root / "tiny.yaml", root / "run", progress=False)
    return root / "run"


def test_rebuilt_latents_render_the_stored_faces(tiny_run):
    from faceaudit.generate.dcgan.generator import DCGANGenerator

    faces = pd.read_parquet(tiny_run / "faces.parquet")
    assert (faces["skin_shift"] != 0).any() and (faces["edit_attr"] != "none").any()
    z = face_latents(tiny_run, faces)
    images = DCGANGenerator(protocol_seed=5, device="cpu").render_latents(z)
    for i, rel in enumerate(faces["path"]):
        stored = np.asarray(Image.open(tiny_run / rel).convert("RGB"), dtype=int)
        assert np.abs(stored - images[i].astype(int)).mean() < 0.5, faces["face_id"].iloc[i]
    # and the check can fail: another face's latent renders a visibly different image
    other = np.asarray(Image.open(tiny_run / faces["path"].iloc[1]).convert("RGB"), dtype=int)
    assert np.abs(other - images[0].astype(int)).mean() > 5


def test_planted_direction_is_recovered_from_ordinal_labels():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((400, 100))
    v = rng.standard_normal(100)
    v /= np.linalg.norm(v)
    # five age groups cut from a latent score, with rater noise, averaged over 3 raters per face
    latent = z @ v
    codes = np.stack([np.digitize(latent + rng.normal(0, 0.5, len(z)), [-1.2, -0.4, 0.4, 1.2]) + 1 for _ in range(3)])
    d = fit_direction("age", z, codes.mean(axis=0))
    assert d.attribute == "human_age" and d.measure == "human:age"
    assert float(d.unit @ v) > 0.85
    assert d.r2_cv > 0.5
    # one step along the unit moves the label by about one SD (ridge shrinks the slope a little)
    y = codes.mean(axis=0)
    slope = np.polyfit(z @ d.unit, (y - y.mean()) / y.std(), 1)[0]
    assert 0.8 < slope * d.step < 1.25


def test_cli_fits_label_directions_from_annotations(tiny_run, tmp_path):
    from typer.testing import CliRunner

    from faceaudit.cli import app

    faces = pd.read_parquet(tiny_run / "faces.parquet")
    z = face_latents(tiny_run, faces)
    rng = np.random.default_rng(1)
    v = rng.standard_normal(100)
    rows = []
    for rater in ("r1", "r2"):
        age = np.clip(np.round(3 + (z @ v) / np.std(z @ v) + rng.normal(0, 0.3, len(z))), 1, 5)
        for fid, a in zip(faces["face_id"], age):
            rows.append({"rater": rater, "task_id": f"{rater}-{fid}", "kind": "image", "item": fid, "question": "age",
                         "value": int(a)})
    pd.DataFrame(rows).to_parquet(tiny_run / "annotations.parquet")
    out = tmp_path / "labels.json"
    runner = CliRunner()
    r = runner.invoke(app, ["directions", "fit", "--labels", str(tiny_run / "annotations.parquet"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "human_age: cross-validated R²" in r.output
    d = load_directions(out)
    assert set(d.attributes) == {"human_age"} and d.metadata["calibrated"] is False
    assert d.shift("human_age", 1.0).shape == (100,)
    # too few faces for a question, and a missing file: one-line bad input
    from faceaudit.generate.dcgan.label_directions import fit_label_directions

    pd.DataFrame(rows[:10]).to_parquet(tiny_run / "few_annotations.parquet")
    with pytest.raises(BadInput, match="too few labelled faces"):
        fit_label_directions(tiny_run / "few_annotations.parquet")
    r = runner.invoke(app, ["directions", "fit", "--labels", str(tmp_path / "absent.parquet")])
    assert r.exit_code == 2 and "not found" in r.output
