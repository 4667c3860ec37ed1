"""p-values of bootstrap contrasts stay resolvable below the 2/(B+1) floor."""

import numpy as np
from scipy.stats import norm

from faceaudit.stats.bootstrap import bootstrap_pvalue, resolved_pvalue


def test_inside_the_replicates_it_is_the_interval_inversion():
    rng = np.random.default_rng(0)
    reps = rng.normal(0.5, 1.0, 2000)
    assert resolved_pvalue(reps, 0.5, 0.0) == float(bootstrap_pvalue(reps, 0.0))


def test_far_from_the_null_it_follows_the_bootstrap_se():
    rng = np.random.default_rng(1)
    reps = rng.normal(10.0, 1.0, 1000)  # no replicate near 0: the inversion is stuck at 2/1001
    p = resolved_pvalue(reps, 10.0, 0.0)
    assert p < 1e-15
    assert np.isclose(np.log(p), np.log(2 * norm.sf(10.0 / reps.std(ddof=1))), rtol=1e-9)
    assert float(bootstrap_pvalue(reps, 0.0)) == 2 / 1001


def test_ratios_use_the_log_scale():
    rng = np.random.default_rng(2)
    reps = np.exp(rng.normal(np.log(1.5), 0.05, 1000))
    p = resolved_pvalue(reps, 1.5, 1.0, log=True)
    z = np.log(1.5) / np.log(reps).std(ddof=1)
    assert np.isclose(p, 2 * norm.sf(z), rtol=1e-6) and p < 2 / 1001
