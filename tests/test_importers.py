"""faceaudit import: a CausalFace-shaped folder and a labelled CSV of faces, rendered by the real DCGAN,
become run directories the rest of the audit (embed, score, analyze, report) runs on unchanged.

The model is the colour-histogram plugin (tests/plugins): a complete FaceRecognizer with real
embeddings of the images, cheap enough to run the whole audit here."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from faceaudit import api
from faceaudit.core.errors import BadInput
from faceaudit.rundir import read_table, sha256_file

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "plugins.color_model:factory"
GROUPS = [("asian", "female"), ("asian", "male"), ("black", "female"), ("black", "male")]
SWEEPS = {"pose": [-1.0, 0.0, 1.0], "age": [0.0, 2.0]}
SEEDS = [3, 8, 21]


@pytest.fixture(scope="module")
def generator():
    from faceaudit.generate.dcgan.generator import DCGANGenerator

    return DCGANGenerator(protocol_seed=0, device="cpu")


def _render(generator, n: int, rng: np.random.Generator) -> np.ndarray:
    return generator.render_latents(rng.normal(size=(n, 100)).clip(-2.5, 2.5))


@pytest.fixture(scope="module")
def causalface_dir(tmp_path_factory, generator):
    """final_picked_{attr}/seed_{N}/{race}_{gender}_{tag}_{value}.png from DCGAN renders."""
    root = tmp_path_factory.mktemp("causalface")
    n = len(SEEDS) * len(GROUPS) * sum(len(v) for v in SWEEPS.values())
    images = iter(_render(generator, n, np.random.default_rng(0)))
    for attr, values in SWEEPS.items():
        for seed in SEEDS:
            d = root / f"final_picked_{attr}" / f"seed_{seed}"
            d.mkdir(parents=True)
            for race, gender in GROUPS:
                for v in values:
                    Image.fromarray(next(images)).save(d / f"{race}_{gender}_{attr[0]}_{v:g}.png")
    (root / "README.txt").write_text("not an attribute folder")
    return root


def test_causalface_import_gives_back_groups_seeds_and_edits(causalface_dir, tmp_path):
    run = tmp_path / "cf"
    faces = api.import_dataset("causalface", causalface_dir, run, models=[PLUGIN],
                               reference="race=asian|gender=male")
    assert sorted(faces["group"].unique()) == sorted(f"race={r}|gender={g}" for r, g in GROUPS)
    assert sorted(faces["seed"].unique()) == SEEDS
    edits = sorted(set(zip(faces["edit_attr"], faces["edit_level"])))
    assert edits == [("age", 2.0), ("none", 0.0), ("pose", -1.0), ("pose", 1.0)]
    # one prototype per (seed, group), every seed in every group (the paired design)
    protos = faces[faces["edit_attr"] == "none"]
    assert len(protos) == len(SEEDS) * len(GROUPS) and not protos.duplicated(["seed", "group"]).any()
    assert (faces.groupby("seed")["group"].nunique() == len(GROUPS)).all()
    assert set(faces["race"]) == {"asian", "black"} and set(faces["gender"]) == {"female", "male"}
    # the images were copied byte for byte
    row = faces[(faces["seed"] == 8) & (faces["edit_attr"] == "pose") & (faces["edit_level"] == 1.0)
                & (faces["group"] == "race=black|gender=male")].iloc[0]
    src = causalface_dir / "final_picked_pose" / "seed_8" / "black_male_p_1.png"
    assert row["sha256"] == sha256_file(src) == sha256_file(run / row["path"])
    assert read_table(run / "faces.parquet").equals(faces)

    # the rest of the audit runs on it unchanged
    ctx = api.audit_run(run, progress=False)
    assert "analyze" in ctx.ran and "report" in ctx.ran
    r = api.load_run(run)
    er = r.error_rates
    assert set(er["group"]) == set(faces["group"]) | {"all"}
    c = r.contrasts
    cells = c[c["contrast"] == "cell"]
    assert set(cells["reference"]) == {"asian|male"} and set(cells["reference_group"]) == {"race=asian|gender=male"}
    assert (cells["attribute"].str.startswith("race+gender")).all()
    # crossed attributes: each one's marginal effect and their interaction, paired within seed
    marginal = c[(c["contrast"] == "marginal") & (c["condition"] == "all")]
    assert set(zip(marginal["attribute"], marginal["level"], marginal["reference"])) == {
        ("race", "black", "asian"), ("gender", "female", "male")}
    # ... and within each edit condition (attribute "<attr>|<condition>"), the same levels
    per_condition = c[(c["contrast"] == "marginal") & ~c["condition"].isin(["all", "primary_pool"])]
    assert set(per_condition["attribute"]) == {f"{a}|{cond}" for a in ("race", "gender")
                                                for cond in per_condition["condition"].unique()}
    assert set(zip(per_condition["level"], per_condition["reference"])) == {("black", "asian"), ("female", "male")}
    inter = c[c["contrast"] == "interaction"]
    assert set(inter["attribute"]) == {"race:gender"} and set(inter["level"]) == {"black:female"}
    summary = json.loads((run / "results" / "summary.json").read_text())
    assert summary["reference_group"] == "race=asian|gender=male"
    # an experimental import: the card describes the paired design, with no observational caveat
    html = (run / "report.html").read_text()
    assert "correlational, not causal" not in html and "paired within identity" in html
    assert "asian male" in html


def test_causalface_bad_layout_is_one_line_bad_input(tmp_path, causalface_dir):
    bad = tmp_path / "bad" / "final_picked_pose" / "seed_1"
    bad.mkdir(parents=True)
    (bad / "asian_female.png").write_bytes(b"\x89PNG")
    with pytest.raises(BadInput, match="is not <race>_<gender>_<tag>_<value>.png"):
        api.import_dataset("causalface", tmp_path / "bad", tmp_path / "out", models=[PLUGIN])
    with pytest.raises(BadInput, match="no prototype"):
        api.import_dataset("causalface", causalface_dir, tmp_path / "out2", models=[PLUGIN], prototype_value=5.0)
    assert not (tmp_path / "out2" / "faces.parquet").exists()


@pytest.fixture(scope="module")
def labelled_csv(tmp_path_factory, generator):
    """Eight identities, three photos each (a rendered face and two perturbed re-renders), one attribute."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(1)
    z = rng.normal(size=(8, 100)).clip(-2.5, 2.5)
    rows = []
    for i, zi in enumerate(z):
        photos = generator.render_latents(np.stack([zi, zi + 0.3 * rng.normal(size=100), zi + 0.3 * rng.normal(size=100)]))
        for k, img in enumerate(photos):
            rel = f"imgs/person{i}_{k}.png"
            (root / "imgs").mkdir(exist_ok=True)
            Image.fromarray(img).save(root / rel)
            rows.append({"path": rel, "identity": f"person{i}", "gender": "female" if i % 2 else "male"})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root / "labels.csv"


def _cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}")
    return subprocess.run([sys.executable, "-m", "faceaudit.cli", *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_folder_csv_import_runs_end_to_end_and_the_card_says_observational(labelled_csv, tmp_path):
    run = tmp_path / "obs"
    proc = _cli("import", "folder", str(labelled_csv), "--out", str(run), "-m", PLUGIN, "--reference", "gender=male",
                "--audit", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    faces = read_table(run / "faces.parquet")
    assert faces["seed"].nunique() == 8 and len(faces) == 24
    assert set(faces["group"]) == {"gender=female", "gender=male"}
    assert (faces.groupby("seed")["group"].nunique() == 1).all()  # identity is the cluster, one group each
    pairs = read_table(run / "pairs.parquet")
    gen, imp = pairs[pairs["kind"] == "genuine"], pairs[pairs["kind"] == "impostor"]
    assert len(gen) == 16 and (gen["seed_a"] == gen["seed_b"]).all()  # first photo vs each other photo
    ident_group = faces.drop_duplicates("seed").set_index("seed")["group"]
    assert (ident_group.loc[imp["seed_a"]].to_numpy() == ident_group.loc[imp["seed_b"]].to_numpy()).all()
    er = read_table(run / "results" / "error_rates.parquet")
    pooled = er[(er["group"] == "all") & (er["edit_attr"] == "all")]
    assert pooled["n_impostor"].iloc[0] + pooled["n_impostor_fte"].iloc[0] == len(imp)
    # the model card says in its first lines that the conclusions are correlational
    html = (run / "report.html").read_text()
    body = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html[html.index("<body"):]))
    assert "correlational, not causal" in body[:300]
    proto = (run / "protocol.yaml").read_text()
    assert "design: observational" in proto


def test_folder_import_bad_input(tmp_path, labelled_csv):
    bad = tmp_path / "bad.csv"
    bad.write_text("path,person,gender\nx.png,a,f\n")
    proc = _cli("import", "folder", str(bad), "--out", str(tmp_path / "r"), "-m", PLUGIN, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "missing columns ['identity']" in proc.stderr
    two = tmp_path / "two.csv"
    df = pd.read_csv(labelled_csv)
    df["path"] = [str(labelled_csv.parent / p) for p in df["path"]]
    df.loc[0, "gender"] = "female"  # person0 now has photos in two groups
    df.to_csv(two, index=False)
    with pytest.raises(BadInput, match="more than one group"):
        api.import_dataset("folder", two, tmp_path / "r2", models=[PLUGIN])


def test_audit_refuses_to_regenerate_an_imported_run(causalface_dir, tmp_path):
    run = tmp_path / "cf"
    api.import_dataset("causalface", causalface_dir, run, models=[PLUGIN])
    before = sha256_file(run / "faces.parquet")
    with pytest.raises(BadInput, match="faces were imported"):
        api.audit(run / "protocol.yaml", run)
    assert sha256_file(run / "faces.parquet") == before
