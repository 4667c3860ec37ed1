"""Bugs of issue 18 in what the gate judges and what the card colours (each failed before its fix):

* summary.json (which the gate reads) carried the contrasts pooled over *every* edit condition, while
  the headline shows the primary pool's estimate and coloured it with the gate's decision on the
  other number;
* a gate decision coloured a headline cell whatever estimate it was taken on.
"""

from __future__ import annotations

import json
import re
import tempfile
import warnings

import numpy as np
import pytest

from faceaudit.stats.analyze import analyze_run
from faceaudit.stats.simulate import SimSpec, write_sim_run


@pytest.fixture(scope="module")
def pooled_run():
    """A simulated run whose primary pool (prototype and lighting -1) differs from 'every condition':
    the dark group's genuine scores fall with |lighting|, so its FNMR contrast differs between them."""
    spec = SimSpec(n_seeds=20, edits={"lighting": (-2.0, -1.0, 1.0, 2.0)}, gen_shift={"skin=dark": -0.15},
                   abs_slope={"skin=dark": {"lighting": -0.12}})
    root = write_sim_run(tempfile.mkdtemp(), spec, np.random.default_rng(0), n_boot=100,
                         primary={"conditions": ["none", "lighting=-1"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = analyze_run(root)
    return root, out


def test_summary_carries_the_primary_pool_contrast_the_headline_shows(pooled_run):
    root, out = pooled_run
    c = out["contrasts"]
    pick = lambda cond: c[(c["metric"] == "fnmr_diff") & (c["group"] == "skin=dark") & (c["condition"] == cond)  # noqa: E731
                          & (c["contrast"] == "cell")].iloc[0]
    pool, every = pick("primary_pool"), pick("all")
    assert abs(pool["estimate"] - every["estimate"]) > 0.01  # the two poolings really differ here
    summary = json.loads((root / "results" / "summary.json").read_text())
    got = summary["models"]["sim"]["1e-02"]["fnmr_diff"]["skin=dark"]
    assert got["estimate"] == pytest.approx(pool["estimate"], rel=1e-12)
    assert got["ci_hi"] == pytest.approx(pool["ci_hi"], rel=1e-12)
    # FTE has no primary pool (detector-level, not pooled by edit): its every-condition row stays
    fte = c[(c["metric"] == "fte_rate_diff") & (c["group"] == "skin=dark") & (c["condition"] == "all")]
    assert len(fte) and "skin=dark" in summary["models"]["sim"]["fte_rate_diff"]


def test_a_gate_decision_on_another_number_colours_nothing(synthetic_run):
    import pandas as pd

    import _synthetic_run as syn
    from faceaudit.report import render_report

    c = pd.read_parquet(synthetic_run / "results" / "contrasts.parquet")
    shown = c[(c["model"] == "alpha") & (c["metric"] == "fnmr_diff") & (c["group"] == "skin=dark")
              & (c["condition"] == "all") & np.isclose(c["target_fmr"], syn.TARGET_FMR)].iloc[0]  # what the headline shows

    def colours(estimate):
        check = {"metric": "fnmr_diff", "model": "alpha", "target_fmr": syn.TARGET_FMR, "group": "skin=dark",
                 "estimate": float(estimate), "decision": "fail", "threshold_source": "target_fmr"}
        (synthetic_run / "results" / "gate.json").write_text(json.dumps({"policy": "p", "checks": [check]}))
        head = render_report(synthetic_run).read_text().split('<nav class="toc">')[0]
        return re.findall(r'class="num fail"', head)

    assert len(colours(shown["estimate"])) == 1  # a decision on the number shown: coloured
    assert colours(shown["estimate"] + 0.05) == []  # a decision on another pooling's number: not this cell's
