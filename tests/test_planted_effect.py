"""End to end: a planted group effect on a real model is found, with the right sign, and separated
from the base model's own group differences.

The wrapper adds Gaussian noise to dlib's embeddings. Run A: only for skin=dark. Run B: the same
noise for every group. Both runs contain dlib's own group differences; only A contains a
dark-specific degradation, so A's dark-vs-light FNMR contrast must be significant, positive and
larger than B's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from faceaudit import api
from faceaudit.models.noisy import NoisyRecognizer
from faceaudit.models.registry import load_model

SIGMA = 0.03


def audit_with(model, quick_run: Path, out: Path):
    # Reuse the quick run's faces (rendering is not what is tested here); embed/score/analyze anew.
    out.mkdir()
    for name in ("protocol.yaml", "faces.parquet", "images"):
        src = quick_run / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, out / name)
    api.embed(out, progress=False, models=[model])
    api.score(out, models=[model])
    api.analyze(out)
    return api.load_run(out).contrasts


def pooled(contrasts, metric, level):
    rows = contrasts[(contrasts.metric == metric) & (contrasts.level == level) & (contrasts.condition == "all")]
    assert len(rows) == 1, rows
    return rows.iloc[0]


@pytest.fixture(scope="module")
def planted(quick_run, tmp_path_factory):
    base = load_model("dlib", device="cpu")
    tmp = tmp_path_factory.mktemp("planted")
    only_dark = audit_with(NoisyRecognizer(base, SIGMA, groups={"skin=dark"}, seed=1), Path(quick_run), tmp / "dark")
    everyone = audit_with(NoisyRecognizer(base, SIGMA, groups=None, seed=1), Path(quick_run), tmp / "all")
    return only_dark, everyone


def test_planted_group_noise_is_significant_with_the_right_sign(planted):
    only_dark, _ = planted
    row = pooled(only_dark, "fnmr_diff", "dark")
    assert row.estimate > 0 and row.ci_lo > 0
    assert row.p_adjusted < 0.05, row
    # the untouched intermediate level shows no planted effect of that size
    assert pooled(only_dark, "fnmr_diff", "intermediate").estimate < row.estimate / 2


def test_planted_part_is_separated_from_the_model_own_differences(planted):
    only_dark, everyone = planted
    planted_dark = pooled(only_dark, "fnmr_diff", "dark").estimate
    shared_dark = pooled(everyone, "fnmr_diff", "dark")
    assert planted_dark > shared_dark.estimate
    # and the difference is beyond noise: B's interval does not reach A's estimate
    assert shared_dark.ci_hi < planted_dark
