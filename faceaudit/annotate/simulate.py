"""Simulated raters drawn from a known model: drives the tests and sizes a real rating campaign.

Each pair has a true identity similarity ``s`` in [0, 1]. A careful rater ``r`` perceives
``s + b_r + e`` (rater bias ``b_r ~ N(0, bias_sd)`` fixed per rater, noise ``e ~ N(0, noise_sd)``
per rating) and answers the "same person?" code whose bin (cut points 0.2, 0.4, 0.6, 0.8) contains
it. A careless rater answers uniformly at random. Image questions are answered with the face's true
category with probability ``image_accuracy`` and at random otherwise.

The estimand of the consensus score is the expected rescaled rating of a careful rater
(:func:`expected_consensus`); :func:`expected_alpha` is the large-sample interval alpha the model
implies, so both can be checked against what the export computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from scipy.stats import norm

from faceaudit.annotate.plan import PlanSpec
from faceaudit.annotate.store import Store, ensure_plan
from faceaudit.rating_scales import IMAGE_QUESTIONS, SAME
from faceaudit.stats import human

CUTS = np.array([0.2, 0.4, 0.6, 0.8])
N_CODES = len(SAME.options)


@dataclass(frozen=True)
class RaterModel:
    noise_sd: float = 0.12
    bias_sd: float = 0.05
    careless_share: float = 0.1
    image_accuracy: float = 0.8
    seed: int = 0


def pair_truth(pairs: pd.DataFrame, seed: int = 0) -> pd.Series:
    """A plausible true similarity per pair_id: genuine pairs fall with the edit size, impostors are low."""
    rng = np.random.default_rng([seed, 77])
    gen = (pairs["kind"] == "genuine").to_numpy()
    base = np.where(gen, 0.88 - 0.12 * pairs["edit_level"].abs().to_numpy(dtype=float), 0.12)
    s = np.clip(base + rng.normal(0, 0.1, len(pairs)), 0, 1)
    return pd.Series(s, index=pairs["pair_id"].to_numpy())


def code_probs(s: np.ndarray, model: RaterModel, careless_share: float = 0.0) -> np.ndarray:
    """P(code = 1..5 | s) for a rater drawn from the population ([n, 5])."""
    sigma = np.hypot(model.noise_sd, model.bias_sd)
    cdf = norm.cdf((CUTS[None, :] - np.asarray(s, dtype=float)[:, None]) / sigma)
    cdf = np.concatenate([np.zeros((cdf.shape[0], 1)), cdf, np.ones((cdf.shape[0], 1))], axis=1)
    p = np.diff(cdf, axis=1)
    return (1 - careless_share) * p + careless_share / N_CODES


def expected_consensus(s: np.ndarray, model: RaterModel) -> np.ndarray:
    """The consensus score's estimand: a careful rater's expected rescaled rating."""
    return code_probs(s, model) @ (np.arange(N_CODES) / (N_CODES - 1))


def expected_alpha(s: np.ndarray, model: RaterModel, careless_share: float = 0.0) -> float:
    """Large-sample Krippendorff interval alpha on the rescaled scale: between-pair variance of the
    expected rating over its total variance."""
    p = code_probs(s, model, careless_share)
    x = np.arange(N_CODES) / (N_CODES - 1)
    mu = p @ x
    within = p @ x**2 - mu**2
    return float(mu.var() / (mu.var() + within.mean()))


def _code(latent: np.ndarray) -> np.ndarray:
    return np.searchsorted(CUTS, latent, side="right") + 1


def simulate_panel(raters: list[str], model: RaterModel) -> pd.DataFrame:
    rng = np.random.default_rng([model.seed, 3])
    n_careless = int(round(model.careless_share * len(raters)))
    careless = np.zeros(len(raters), dtype=bool)
    careless[rng.permutation(len(raters))[:n_careless]] = True
    return pd.DataFrame({"rater": raters, "careless": careless, "bias": rng.normal(0, model.bias_sd, len(raters))})


def fill_store(store: Store, truth: pd.Series, faces: pd.DataFrame, model: RaterModel) -> pd.DataFrame:
    """Answer every open task in ``store`` as the simulated panel would; returns the panel."""
    rng = np.random.default_rng([model.seed, 5])
    raters = [r for r, role, _ in store.tokens() if role == "rater"]
    panel = simulate_panel(raters, model).set_index("rater")
    true_cat = _true_categories(faces, model.seed)
    for rater in raters:
        careless, bias = bool(panel.at[rater, "careless"]), float(panel.at[rater, "bias"])
        for t in store.tasks_of(rater):
            if t["done"]:
                continue
            if t["kind"] == "pair":
                if careless:
                    code = int(rng.integers(1, N_CODES + 1))
                else:
                    s = {"identical": 1.0, "different": 0.0}.get(t["check_kind"])
                    s = float(truth[int(t["item"])]) if s is None else s
                    code = int(_code(np.array([s + bias + rng.normal(0, model.noise_sd)]))[0])
                answers = {SAME.key: code}
            else:
                answers = {}
                for q in IMAGE_QUESTIONS:
                    if careless or rng.random() > model.image_accuracy:
                        answers[q.key] = int(rng.choice(q.codes))
                    else:
                        answers[q.key] = int(true_cat[q.key][t["item"]])
            store.submit(t["task_id"], rater, answers)
    return panel.reset_index()


def _true_categories(faces: pd.DataFrame, seed: int) -> dict[str, pd.Series]:
    """A fixed 'true' answer per face and image question (skin follows the protected group's order)."""
    rng = np.random.default_rng([seed, 9])
    groups = sorted(faces["group"].unique())
    out = {}
    for q in IMAGE_QUESTIONS:
        if q.key == "skin":
            # light -> low Monk codes, dark -> high, whatever the group names are
            rank = faces["group"].map({g: i for i, g in enumerate(sorted(groups, key=_lightness_key))})
            vals = np.clip(2 + np.round(rank.to_numpy() * 6 / max(len(groups) - 1, 1)), 1, 10).astype(int)
        else:
            per_seed = {s: int(rng.choice(q.codes)) for s in sorted(faces["seed"].unique())}
            vals = faces["seed"].map(per_seed).to_numpy()
        out[q.key] = pd.Series(vals, index=faces["face_id"].to_numpy())
    return out


def _lightness_key(group: str) -> int:
    order = ("light", "intermediate", "medium", "dark")
    return next((i for i, w in enumerate(order) if w in group), len(order))


def simulate_annotations(run_root: str | Path, spec: PlanSpec, model: RaterModel,
                         truth: Optional[pd.Series] = None) -> tuple[pd.DataFrame, pd.Series]:
    """Plan RUN/annotations.sqlite (if needed) and fill it with simulated ratings; (panel, truth)."""
    root = Path(run_root)
    pairs = pd.read_parquet(root / "pairs.parquet")
    faces = pd.read_parquet(root / "faces.parquet")
    truth = pair_truth(pairs, model.seed) if truth is None else truth
    store = ensure_plan(root, spec)
    try:
        panel = fill_store(store, truth, faces, model)
    finally:
        store.close()
    return panel, truth


def plan_raters(n_pairs: int = 500, raters_per_pair: tuple[int, ...] = (3, 5, 8, 12), model: RaterModel = RaterModel(),
                level: float = 0.95) -> pd.DataFrame:
    """How wide the consensus CI is, and how often it covers the truth, for each panel size.

    Pure simulation (no run needed): ``n_pairs`` truths spread over [0, 1], careful raters only
    (careless ones are removed by the attention checks before the consensus).
    """
    rng = np.random.default_rng([model.seed, 21])
    s = rng.uniform(0, 1, n_pairs)
    target = expected_consensus(s, model)
    rows = []
    for k in raters_per_pair:
        bias = rng.normal(0, model.bias_sd, (n_pairs, k))
        codes = _code(s[:, None] + bias + rng.normal(0, model.noise_sd, (n_pairs, k)))
        ann = pd.DataFrame({"rater": np.tile(np.arange(k), n_pairs).astype(str), "item": np.repeat(np.arange(n_pairs), k).astype(str),
                            "kind": "pair", "question": SAME.key, "value": codes.ravel(), "check_kind": ""})
        c = human.consensus_identity(ann, level=level)
        c = c.set_index("pair_id").reindex(np.arange(n_pairs))
        covered = (c["ci_lo"].to_numpy() <= target) & (target <= c["ci_hi"].to_numpy())
        rows.append({"raters_per_pair": k, "mean_ci_width": float((c["ci_hi"] - c["ci_lo"]).mean()),
                     "max_ci_width": float((c["ci_hi"] - c["ci_lo"]).max()), "coverage": float(covered.mean())})
    return pd.DataFrame(rows)
