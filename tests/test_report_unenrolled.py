"""A model that enrols no face at all (every embedding is a failure to enrol) next to one that works:
the analysis and the report finish, the card and summaries say the model enrolled no face (FTE 100%)
and report nothing else for it, and a gate bound on its missing values is inconclusive (exit 3)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from faceaudit import api
from faceaudit.cli import app

WORKING = "plugins.color_model:factory"
NO_FACE = "plugins.no_face_model:factory"
GROUPS = [("asian", "male"), ("black", "male")]
SWEEPS = {"pose": [-1.0, 0.0, 1.0]}
SEEDS = [1, 2, 3, 4]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A CausalFace-shaped folder of random-noise images (the colour-histogram plugin embeds any image)."""
    src = tmp_path_factory.mktemp("cf")
    rng = np.random.default_rng(0)
    for attr, values in SWEEPS.items():
        for seed in SEEDS:
            d = src / f"final_picked_{attr}" / f"seed_{seed}"
            d.mkdir(parents=True)
            for race, gender in GROUPS:
                for v in values:
                    img = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                    Image.fromarray(img).save(d / f"{race}_{gender}_{attr[0]}_{v:g}.png")
    return src


@pytest.fixture(scope="module")
def run(tmp_path_factory, source) -> Path:
    """Imported and audited with a working model and one that enrols no face."""
    out = tmp_path_factory.mktemp("runs") / "unenrolled"
    api.import_dataset("causalface", source, out, models=[WORKING, NO_FACE], reference="race=asian|gender=male")
    ctx = api.audit_run(out, progress=False)
    assert "analyze" in ctx.ran and "report" in ctx.ran
    return out


def _gate(run: Path, tmp_path: Path, rules: str):
    policy = tmp_path / "policy.yaml"
    policy.write_text("name: unenrolled\nrules:\n" + rules)
    return CliRunner().invoke(app, ["gate", str(run), "--policy", str(policy)])


def test_a_run_whose_only_model_enrols_no_face_finishes(tmp_path, source):
    """The defect: analyze crashed (exit 4, KeyError in build_summary) when no model enrolled a face."""
    out = tmp_path / "only"
    api.import_dataset("causalface", source, out, models=[NO_FACE], reference="race=asian|gender=male")
    api.embed(out, progress=False)
    api.score(out)
    cli = CliRunner()
    for command in ("analyze", "report"):
        res = cli.invoke(app, [command, str(out)])
        assert res.exit_code == 0, (command, res.output)
    summary = json.loads((out / "results" / "summary.json").read_text())
    assert summary["models"]["no-face"]["enrolled_nothing"] is True
    assert "no-face enrolled no face (FTE 100.0%)" in (out / "results" / "summary.md").read_text()
    assert "no-face enrolled no face: failure to enrol 100.0%" in " ".join((out / "report.html").read_text().split())
    # bounds on rates, contrasts and fairness summaries it could not estimate: inconclusive, not bad input
    res = _gate(out, tmp_path, "  - metric: fnmr_diff\n    model: no-face\n    max: 0.1\n"
                               "  - metric: garbe\n    model: no-face\n    max: 0.5\n")
    assert res.exit_code == 3, res.output


def test_summary_says_the_model_enrolled_no_face(run):
    summary = json.loads((run / "results" / "summary.json").read_text())
    m = summary["models"]["no-face"]
    assert m["enrolled_nothing"] is True
    assert m["fte_rate"]["all"]["estimate"] == 1.0
    assert m["n_genuine"] == 0 and m["n_impostor"] == 0
    key = next(k for k, v in m.items() if isinstance(v, dict) and "target_fmr" in v)
    assert m[key]["threshold"] is None
    assert all(v["estimate"] is None and v["ci_lo"] is None for v in m[key]["fnmr"].values())
    # the working model is analysed as usual
    assert summary["models"]["color-hist"].get("enrolled_nothing") is False


def test_card_and_summary_md_say_fte_100(run):
    html = " ".join((run / "report.html").read_text().split())
    assert "no-face enrolled no face: failure to enrol 100.0%" in html
    assert "no-face enrolled no face (FTE 100%)" in html
    md = (run / "results" / "summary.md").read_text()
    assert "no-face enrolled no face (FTE 100.0%)" in md


def test_gate_on_the_missing_values_is_inconclusive(run, tmp_path):
    res = _gate(run, tmp_path, "  - metric: fnmr\n    model: no-face\n    group: all\n    max: 0.5\n"
                               "  - metric: fmr_max_min_ratio\n    model: no-face\n    max: 3\n")
    assert res.exit_code == 3, res.output
    assert "inconclusive" in res.output
