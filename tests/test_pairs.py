"""Pair construction: counts, identity rules and matched impostors on a faces table."""

from itertools import product

import pandas as pd
import pytest

from faceaudit.core.errors import BadInput
from faceaudit.pairs import build_pairs

SEEDS = [3, 5, 8, 13]
GROUPS = ["skin=light", "skin=dark"]
EDITS = [("none", 0.0), ("yaw", -1.0), ("yaw", 1.0), ("smile", 2.0)]


def faces_table():
    rows = []
    for seed, group, (attr, level) in product(SEEDS, GROUPS, EDITS):
        rows.append({"face_id": f"s{seed}_{group}_{attr}_{level:+}", "seed": seed, "group": group,
                     "edit_attr": attr, "edit_level": level})
    return pd.DataFrame(rows)


def test_counts_and_identity_rules():
    faces = faces_table()
    pairs = build_pairs(faces)
    gen = pairs[pairs.kind == "genuine"]
    imp = pairs[pairs.kind == "impostor"]
    # genuine: one per (seed, group, non-prototype edit)
    assert len(gen) == len(SEEDS) * len(GROUPS) * (len(EDITS) - 1)
    assert (gen.seed_a == gen.seed_b).all()
    assert gen.face_a.str.contains("_none_").all() and not gen.face_b.str.contains("_none_").any()
    # impostor: C(n_seeds, 2) per (group, edit condition), never the same seed, never across groups
    assert len(imp) == len(GROUPS) * len(EDITS) * len(SEEDS) * (len(SEEDS) - 1) // 2
    assert (imp.seed_a != imp.seed_b).all()
    face_group = faces.set_index("face_id")["group"]
    face_cond = faces.set_index("face_id")[["edit_attr", "edit_level"]].apply(tuple, axis=1)
    for col in ("face_a", "face_b"):
        assert (face_group.loc[pairs[col]].to_numpy() == pairs.group.to_numpy()).all()
    assert (face_cond.loc[imp.face_a].to_numpy() == face_cond.loc[imp.face_b].to_numpy()).all()
    assert pairs.pair_id.is_unique and pairs.pair_id.tolist() == list(range(len(pairs)))


def test_impostor_cap_is_deterministic_and_respected():
    faces = faces_table()
    a = build_pairs(faces, max_impostors_per_condition=2, seed=1)
    b = build_pairs(faces, max_impostors_per_condition=2, seed=1)
    c = build_pairs(faces, max_impostors_per_condition=2, seed=2)
    pd.testing.assert_frame_equal(a, b)
    per_cond = a[a.kind == "impostor"].groupby(["group", "edit_attr", "edit_level"]).size()
    assert (per_cond == 2).all()
    assert not a.equals(c)


def test_duplicate_face_id_is_bad_input():
    faces = faces_table()
    faces.loc[1, "face_id"] = faces.loc[0, "face_id"]
    with pytest.raises(BadInput, match="duplicate face_id"):
        build_pairs(faces)
