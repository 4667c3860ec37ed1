"""Streamed impostor statistics (faceaudit.stats.impostors) against the in-memory reference analysis.

The reference is the analysis that holds every impostor pair at once (``method="exact"``). The
streamed one must give the same tables: same rows, point estimates and bootstrap numbers equal to
1e-12, dyadic-robust intervals to 1e-9 (the same algebra summed in another order). The histogram is
made coarse (a few bins) and nothing is kept whole, so every exact-refinement path runs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from faceaudit.pairs import build_pairs, score_pairs
from faceaudit.protocol import Protocol
from faceaudit.stats import thresholds as T
from faceaudit.stats.analyze import analyze_design
from faceaudit.stats.data import make_layout, prepare_model
from faceaudit.stats.impostors import ArraySource, ScoreDistribution, bin_index, embedding_source

#: columns whose values come from the dyadic-robust variance (floating sums in another order)
DYADIC_COLS = {"fmr_lo", "fmr_hi"}
DYADIC_METRICS = {"fmr_diff", "fmr_ratio"}


def _protocol() -> Protocol:
    return Protocol.model_validate({
        "name": "stream-eq", "seed": 5, "n_seeds": 30,
        "edits": [{"attribute": "lighting", "levels": [-1, 1]}, {"attribute": "yaw", "levels": [2]}],
        "models": ["sface"],
        "analysis": {"target_fmr": [0.01, 0.1], "n_boot": 200, "far_points": [1e-3, 1e-2]},
    })


class CosineModel:
    """Row-wise cosine similarity in float64, rounded to 3 decimals so that scores tie (the same function
    scores the table and the stream)."""

    name = "cos"

    def similarity(self, a, b):
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        return np.round((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)), 3)


def _design(proto: Protocol, rng: np.random.Generator):
    """Faces of the protocol's design and embeddings with a seed random effect; a few failed enrolments."""
    levels = [lv.name for lv in proto.protected.levels]
    conds = [("none", 0.0)] + [(e.attribute, float(v)) for e in proto.edits for v in e.levels]
    dim = 8
    seed_vec = rng.normal(size=(proto.n_seeds, dim))
    rows, embs = [], []
    for s in range(proto.n_seeds):
        for li, lv in enumerate(levels):
            for attr, v in conds:
                rows.append({"face_id": f"s{s}_{lv}_{attr}{v:+g}", "seed": 100 + s, "group": f"skin={lv}",
                             "skin_tone": lv, "edit_attr": attr, "edit_level": v})
                e = seed_vec[s] + 0.6 * rng.normal(size=dim) + 0.3 * li
                embs.append(e.astype(np.float32))
    faces = pd.DataFrame(rows)
    status = np.array(["ok"] * len(faces), dtype=object)
    status[rng.choice(len(faces), size=5, replace=False)] = "fte"
    emb = pd.DataFrame({"face_id": faces["face_id"], "status": status,
                        "embedding": [np.full(dim, np.nan, np.float32) if st == "fte" else e for st, e in zip(status, embs)]})
    return faces, emb


@pytest.fixture(scope="module")
def design():
    proto = _protocol()
    faces, emb = _design(proto, np.random.default_rng(7))
    layout = make_layout(faces, proto.group_names)
    pairs = build_pairs(faces)
    model = CosineModel()
    scores = score_pairs(pairs, emb, model)
    md = prepare_model(model.name, pairs, scores, emb[["face_id", "status"]], faces, layout)
    ref, ref_summary = analyze_design(proto, layout, [(md, None, "scores")])
    return proto, faces, emb, layout, pairs, scores, md, ref, ref_summary


def _assert_same(ref: dict, got: dict) -> None:
    for name, a in ref.items():
        b = got[name]
        assert list(a.columns) == list(b.columns), name
        assert len(a) == len(b), name
        dyadic_rows = b["metric"].isin(DYADIC_METRICS).to_numpy() if "metric" in b.columns else np.zeros(len(b), bool)
        for col in a.columns:
            x, y = a[col].to_numpy(), b[col].to_numpy()
            if x.dtype.kind in "fiu":
                x, y = x.astype(float), y.astype(float)
                loose = col in DYADIC_COLS or (dyadic_rows.any() and col in ("ci_lo", "ci_hi", "p_value", "p_adjusted"))
                rtol = 1e-9 if loose else 1e-12
                np.testing.assert_allclose(y, x, rtol=rtol, atol=1e-15, equal_nan=True, err_msg=f"{name}.{col}")
            else:
                assert pd.Series(x).equals(pd.Series(y)), f"{name}.{col}"


def test_reference_design_has_false_matches_ties_and_fte(design):
    *_, scores, md, ref, _ = design
    er = ref["error_rates"]
    assert (er["n_false_match"] > 0).any() and (er["n_impostor_fte"] > 0).any()
    imp = md.impostor.score[md.impostor.ok]
    assert len(np.unique(imp)) < len(imp)  # tied impostor scores
    assert len(ref["roc"]) > 0


@pytest.mark.parametrize("fine_bins", [3, 64])
def test_streamed_tables_equal_in_memory_tables(design, fine_bins):
    proto, faces, emb, layout, pairs, scores, md, ref, ref_summary = design
    imp = md.impostor
    opts = dict(fine_bins=fine_bins, keep_whole=0)
    source = ArraySource(imp.seed_a, imp.seed_b, imp.group * layout.C + imp.cond, imp.score, imp.ok, layout.S,
                         layout.G * layout.C, block_pairs=700)
    got, summary = analyze_design(proto, layout, [(md, source, "scores")], **opts)
    _assert_same(ref, got)
    assert summary["models"].keys() == ref_summary["models"].keys()


def test_impostors_scored_from_embeddings_equal_the_scored_table(design):
    """The bounded-memory path: impostor pairs generated from faces and scored block by block, never a table."""
    proto, faces, emb, layout, pairs, scores, md, ref, _ = design
    gen_only = pairs[pairs["kind"] == "genuine"]
    md_gen = prepare_model("cos", gen_only, scores[scores["pair_id"].isin(gen_only["pair_id"])],
                           emb[["face_id", "status"]], faces, layout)
    assert len(md_gen.impostor) == 0
    source = embedding_source(faces, emb, layout, similarity=CosineModel().similarity, block_pairs=900)
    assert source.n_pairs() == len(md.impostor)
    got, _ = analyze_design(proto, layout, [(md_gen, source, "embeddings")], fine_bins=16, keep_whole=0)
    _assert_same(ref, got)


def _distribution(imp: np.ndarray, nb: int) -> ScoreDistribution:
    edges = np.linspace(imp.min(), imp.max() if imp.max() > imp.min() else imp.min() + 1e-9, nb + 1)
    return ScoreDistribution(edges, np.bincount(bin_index(edges, imp), minlength=nb), float(imp.min()), float(imp.max()))


@pytest.mark.parametrize("nb", [2, 7, 100, 5000])
@pytest.mark.parametrize("ties", [False, True])
def test_two_pass_queries_equal_the_sorted_array_definitions(nb, ties):
    rng = np.random.default_rng(nb + ties)
    imp = rng.normal(0.1, 0.1, size=4000)
    gen = rng.normal(0.5, 0.15, size=700)
    if ties:
        imp, gen = np.round(imp, 2), np.round(gen, 2)
    gen = np.sort(gen)
    d = _distribution(imp, nb)
    levels = [1e-4, 1e-3, 3e-3, 0.01, 0.25, 0.9]
    for f in levels:
        d.plan_first_t(f)
    d.plan_eer(gen)
    d.plan_det(gen)
    d.finish([part[d.need[bin_index(d.edges, part)]] for part in np.array_split(imp, 7)])  # pass 3, in blocks
    if nb == 5000 and not ties:
        assert not d.all_collected()  # a fine histogram really refines only some bins
    for f in levels:
        assert d.first_t(f, gen) == T.threshold_at_fmr(imp, f, candidates=gen), f
    assert d.eer(gen) == T.eer(gen, imp)
    for got, want in zip(d.det_points(gen), T.det_points(gen, imp)):
        np.testing.assert_array_equal(got, want)


def test_two_pass_queries_on_many_small_random_designs():
    """Sparse fine bins: the crossing points often fall in empty bins or on a bin's first value."""
    rng = np.random.default_rng(11)
    for trial in range(300):
        n_imp, n_gen = int(rng.integers(5, 400)), int(rng.integers(1, 60))
        imp = rng.normal(0, 1, n_imp)
        gen = rng.normal(rng.uniform(0, 3), 1, n_gen)
        if trial % 3 == 0:
            imp, gen = np.round(imp, 1), np.round(gen, 1)
        gen = np.sort(gen)
        d = _distribution(imp, int(rng.choice([1, 5, 50, 2000])))
        levels = [0.001, 0.02, 0.1, 0.5]
        for f in levels:
            d.plan_first_t(f)
        d.plan_eer(gen)
        d.finish([imp[d.need[bin_index(d.edges, imp)]]])
        for f in levels:
            assert d.first_t(f, gen) == T.threshold_at_fmr(imp, f, candidates=gen), (trial, f)
        assert d.eer(gen) == T.eer(gen, imp), trial


def test_run_storing_an_impostor_sample_gives_the_full_runs_tables(tmp_path, design):
    """``pairs.impostor_sample``: pairs.parquet/scores keep genuine pairs and a sample of impostors, the
    analysis scores every impostor pair from the embeddings with the model's own similarity."""
    from plugins.color_model import ColorHistogram

    from faceaudit.rundir import RunDir, write_table, write_text
    from faceaudit.stats.analyze import analyze_run

    proto, faces, emb, *_ = design
    model = ColorHistogram()
    out, sizes = {}, {}
    for mode, sample in (("all", None), ("sample", 4)):
        data = proto.resolved_dict()
        data["models"] = ["plugins.color_model:factory"]
        data["pairs"] = {"impostor_sample": sample}
        p = Protocol.model_validate(data)
        run = RunDir(tmp_path / mode)
        write_text(run.protocol, p.to_yaml())
        write_table(run.faces, faces)
        write_table(run.embeddings(model.name), emb)
        pairs = build_pairs(faces, None, p.seed, impostor_sample=sample)
        write_table(run.pairs, pairs)
        write_table(run.scores(model.name), score_pairs(pairs, emb, model))
        sizes[mode] = pairs["kind"].value_counts().to_dict()
        out[mode] = analyze_run(run.root, write=False)
    n_cells = faces.groupby(["group", "edit_attr", "edit_level"]).ngroups
    assert sizes["sample"]["impostor"] == 4 * n_cells and sizes["sample"]["genuine"] == sizes["all"]["genuine"]
    assert out["all"]["error_rates"]["n_impostor"].max() == out["sample"]["error_rates"]["n_impostor"].max() > 1000
    _assert_same(out["all"], out["sample"])
    # the stored sample is deterministic
    again = build_pairs(faces, None, proto.seed, impostor_sample=4)
    assert again.equals(build_pairs(faces, None, proto.seed, impostor_sample=4))


def test_impostor_sample_and_cap_exclude_each_other():
    from faceaudit.core.errors import BadInput
    from faceaudit.protocol import parse_protocol

    data = _protocol().resolved_dict()
    data["pairs"] = {"impostor_sample": 10, "max_impostors_per_condition": 50}
    with pytest.raises(BadInput, match="exclude each other"):
        parse_protocol(data, where="p.yaml")
