"""Validated, index-encoded inputs of the analysis for one model.

Everything downstream works on integer indices (seed, group, edit condition) so that aggregation is
``np.bincount`` and bootstrap replicates are matrix products. This module is the only place that
touches the raw tables, and the only place that raises :class:`BadInput` about their content.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from faceaudit.core.errors import BadInput

__all__ = ["ALL", "PAIR_COLUMNS", "SCORE_COLUMNS", "FACE_COLUMNS", "STATUSES", "Layout", "Side", "ModelData",
           "condition_label", "make_layout", "prepare_model"]

PAIR_COLUMNS = ["pair_id", "face_a", "face_b", "kind", "seed_a", "seed_b", "group", "edit_attr", "edit_level"]
SCORE_COLUMNS = ["pair_id", "score", "status"]
FACE_COLUMNS = ["face_id", "seed", "group", "edit_attr", "edit_level"]
STATUSES = ("ok", "fte")
#: name of the pooled margin (over groups, or over edit conditions)
ALL = "all"


def condition_label(attr: str, level: float) -> str:
    """The label of an edit condition, as the results tables write it.

    Parameters
    ----------
    attr : str
        Edited attribute (``none`` for the prototype).
    level : float
        Edit level.

    Returns
    -------
    str
        ``attr=<signed level>``, or ``none`` for the prototype.

    Examples
    --------
    >>> condition_label("lighting", 2), condition_label("yaw", -1.5), condition_label("none", 0.0)
    ('lighting=+2', 'yaw=-1.5', 'none')
    """
    if attr == "none":
        return "none"
    return f"{attr}={float(level):+g}"


@dataclass
class Layout:
    """The index space shared by every model of a run (so bootstrap weights line up).

    Parameters
    ----------
    seeds : numpy.ndarray
        Sorted seed ids; a seed's index is its position here.
    groups : list of str
        Protected groups in protocol order.
    conditions : list of (str, float)
        ``(edit_attr, edit_level)`` of every condition, ``("none", 0.0)`` first.

    Examples
    --------
    >>> layout = Layout(np.array([3, 7]), ["skin=light", "skin=dark"], [("none", 0.0), ("yaw", 1.0)])
    >>> layout.S, layout.G, layout.C, layout.condition_labels
    (2, 2, 2, ['none', 'yaw=+1'])
    >>> layout.seed_index([7, 3], "example").tolist(), layout.group_index(["skin=dark"], "example").tolist()
    ([1, 0], [1])
    """

    seeds: np.ndarray  # sorted seed ids
    groups: list[str]  # protected groups, protocol order; reference first is not assumed
    conditions: list[tuple[str, float]]  # (edit_attr, edit_level), "none" first

    @property
    def S(self) -> int:
        return len(self.seeds)

    @property
    def G(self) -> int:
        return len(self.groups)

    @property
    def C(self) -> int:
        return len(self.conditions)

    @property
    def condition_labels(self) -> list[str]:
        return [condition_label(a, lv) for a, lv in self.conditions]

    def seed_index(self, seeds, where: str) -> np.ndarray:
        seeds = np.asarray(seeds, dtype=np.int64)
        idx = np.searchsorted(self.seeds, seeds)
        idx = np.clip(idx, 0, len(self.seeds) - 1)
        bad = self.seeds[idx] != seeds
        if bad.any():
            raise BadInput(f"{where}: seed {int(seeds[bad][0])} is not in faces.parquet")
        return idx

    def group_index(self, groups, where: str) -> np.ndarray:
        lookup = {g: i for i, g in enumerate(self.groups)}
        codes, uniq = pd.factorize(pd.Series(groups, dtype=object))
        unknown = [g for g in uniq if g not in lookup]
        if unknown:
            raise BadInput(f"{where}: group {unknown[0]!r} is not one of the protocol's groups {self.groups}")
        return np.array([lookup[g] for g in uniq], dtype=np.int64)[codes]

    def condition_index(self, attrs, levels, where: str) -> np.ndarray:
        lookup = {c: i for i, c in enumerate(self.conditions)}
        attrs = np.asarray(attrs, dtype=object)
        # the prototype's level is 0 whatever the table says (some writers leave NaN there)
        levels = np.where(attrs == "none", 0.0, np.asarray(levels, dtype=float))
        # factorize the two columns separately (fast on 1e6 rows), then combine the codes
        ca, ua = pd.factorize(attrs)
        cl, ul = pd.factorize(levels)
        combo = ca.astype(np.int64) * len(ul) + cl
        uniq, inv = np.unique(combo, return_inverse=True)
        out = np.empty(len(uniq), dtype=np.int64)
        for j, k in enumerate(uniq):
            a, lv = str(ua[k // len(ul)]), float(ul[k % len(ul)])
            if (a, lv) not in lookup:
                raise BadInput(f"{where}: edit condition {condition_label(a, lv)!r} not found in faces.parquet")
            out[j] = lookup[(a, lv)]
        return out[inv]


def make_layout(faces: pd.DataFrame, groups: list[str]) -> Layout:
    """The layout of a run's faces table: its seeds, the given groups and every edit condition.

    Parameters
    ----------
    faces : pandas.DataFrame
        The faces table (``face_id, seed, group, edit_attr, edit_level``).
    groups : list of str
        The protocol's group names, in order.

    Returns
    -------
    Layout

    Raises
    ------
    BadInput
        A column of ``faces`` is missing.

    Examples
    --------
    >>> faces = pd.DataFrame({"face_id": ["a", "b", "c"], "seed": [5, 5, 2], "group": ["g"] * 3,
    ...                       "edit_attr": ["yaw", "none", "none"], "edit_level": [1.0, float("nan"), 0.0]})
    >>> layout = make_layout(faces, ["g"])
    >>> layout.seeds.tolist(), layout.conditions
    ([2, 5], [('none', 0.0), ('yaw', 1.0)])
    """
    _require(faces, FACE_COLUMNS, "faces.parquet")
    seeds = np.unique(faces["seed"].to_numpy(dtype=np.int64))
    lv = np.where(faces["edit_attr"].to_numpy() == "none", 0.0, faces["edit_level"].to_numpy(dtype=float))
    conds = sorted(set(zip(faces["edit_attr"].astype(str), lv.tolist())), key=lambda c: (c[0] != "none", c[0], c[1]))
    return Layout(seeds=seeds, groups=list(groups), conditions=[(a, float(x)) for a, x in conds])


@dataclass
class Side:
    """One kind of comparison (genuine or impostor) of one model, index-encoded.

    Parameters
    ----------
    pair_id : numpy.ndarray
        The pairs' ids.
    seed_a, seed_b : numpy.ndarray
        Seed indices of the two faces (equal for genuine pairs).
    group, cond : numpy.ndarray
        Group and condition indices.
    score : numpy.ndarray
        Similarity, NaN where not ``ok``.
    ok : numpy.ndarray
        Both faces enrolled and the score is valid.

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> gen = example_model_data(n_seeds=8).genuine
    >>> len(gen), bool((gen.seed_a == gen.seed_b).all())
    (32, True)
    """

    pair_id: np.ndarray
    seed_a: np.ndarray  # seed index
    seed_b: np.ndarray  # seed index (== seed_a for genuine pairs)
    group: np.ndarray
    cond: np.ndarray
    score: np.ndarray  # NaN where not ok
    ok: np.ndarray  # bool: both faces enrolled, score valid

    def __len__(self) -> int:
        return len(self.pair_id)


@dataclass
class ModelData:
    """One model's comparisons and enrolments, validated and index-encoded (:func:`prepare_model`).

    Parameters
    ----------
    model : str
        The model's name.
    layout : Layout
        The run's index space.
    genuine, impostor : Side
        The model's genuine and impostor comparisons.
    face_seed, face_group, face_cond : numpy.ndarray
        Per face: seed, group and condition index.
    face_fte : numpy.ndarray
        Per face: failed to enrol.

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> md = example_model_data(n_seeds=8)
    >>> md.model, len(md.face_seed) == md.layout.S * md.layout.G * md.layout.C
    ('sim', True)
    """

    model: str
    layout: Layout
    genuine: Side
    impostor: Side
    #: per face: seed index, group index, condition index, failed to enrol
    face_seed: np.ndarray
    face_group: np.ndarray
    face_cond: np.ndarray
    face_fte: np.ndarray


def _require(df: pd.DataFrame, cols: list[str], where: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise BadInput(f"{where}: missing columns {missing}")


def prepare_model(model: str, pairs: pd.DataFrame, scores: pd.DataFrame, face_status: pd.DataFrame,
                  faces: pd.DataFrame, layout: Layout, scores_where: str = "scores",
                  status_where: str = "embeddings") -> ModelData:
    """Join pairs with one model's scores and faces with its enrolment status; validate; encode.

    Parameters
    ----------
    model : str
        The model's name (in error messages and the result).
    pairs : pandas.DataFrame
        The run's pairs table (``PAIR_COLUMNS``).
    scores : pandas.DataFrame
        The model's scores (``pair_id, score, status``), one row per pair.
    face_status : pandas.DataFrame
        The model's enrolment status per face (``face_id, status``).
    faces : pandas.DataFrame
        The run's faces table (``FACE_COLUMNS``).
    layout : Layout
        The run's index space (:func:`make_layout`).
    scores_where, status_where : str
        Where ``scores`` and ``face_status`` came from, for error messages.

    Returns
    -------
    ModelData

    Raises
    ------
    BadInput
        A missing column or score, an unknown status, kind, seed, group or condition, a duplicate
        pair, a NaN score marked ``ok``, or a genuine pair across two seeds.

    Examples
    --------
    >>> from faceaudit.stats.simulate import SimSpec, simulate_run_tables
    >>> tb = simulate_run_tables(SimSpec(n_seeds=4, groups=("skin=light",), edits={"yaw": (1.0,)}),
    ...                          np.random.default_rng(0))
    >>> layout = make_layout(tb["faces"], ["skin=light"])
    >>> md = prepare_model("m", tb["pairs"], tb["scores"], tb["status"], tb["faces"], layout)
    >>> len(md.genuine), len(md.impostor)  # 4 seeds x 1 edit; C(4, 2) x 2 conditions
    (4, 12)
    >>> prepare_model("m", tb["pairs"], tb["scores"].iloc[1:], tb["status"], tb["faces"], layout)
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: scores: model m: no score for pair_id 0
    """
    _require(pairs, PAIR_COLUMNS, "pairs.parquet")
    _require(scores, SCORE_COLUMNS, scores_where)
    _require(face_status, ["face_id", "status"], status_where)

    bad_status = ~scores["status"].isin(STATUSES)
    if bad_status.any():
        row = scores[bad_status].iloc[0]
        raise BadInput(f"{scores_where}: model {model}: status {row['status']!r} for pair_id {row['pair_id']} (expected ok|fte)")
    if scores["pair_id"].duplicated().any():
        pid = scores.loc[scores["pair_id"].duplicated(), "pair_id"].iloc[0]
        raise BadInput(f"{scores_where}: model {model}: duplicate pair_id {pid}")
    sc = pairs.merge(scores[SCORE_COLUMNS], on="pair_id", how="left", validate="one_to_one", indicator=True)
    missing = sc["_merge"] != "both"
    if missing.any():
        raise BadInput(f"{scores_where}: model {model}: no score for pair_id {sc.loc[missing, 'pair_id'].iloc[0]}")
    if len(scores) != len(pairs):
        extra = scores.loc[~scores["pair_id"].isin(pairs["pair_id"]), "pair_id"]
        raise BadInput(f"{scores_where}: model {model}: pair_id {extra.iloc[0]} is not in pairs.parquet")
    ok = (sc["status"] == "ok").to_numpy()
    score = sc["score"].to_numpy(dtype=float)
    bad = ok & ~np.isfinite(score)
    if bad.any():
        raise BadInput(f"{scores_where}: model {model}: score is NaN/inf with status ok for pair_id {sc['pair_id'].to_numpy()[bad][0]}")
    score = np.where(ok, score, np.nan)

    kind = sc["kind"].to_numpy()
    bad_kind = ~np.isin(kind, ["genuine", "impostor"])
    if bad_kind.any():
        raise BadInput(f"pairs.parquet: kind {kind[bad_kind][0]!r} for pair_id {sc['pair_id'].to_numpy()[bad_kind][0]} (expected genuine|impostor)")
    sa = sc["seed_a"].to_numpy(dtype=np.int64)
    sb = sc["seed_b"].to_numpy(dtype=np.int64)
    gen = kind == "genuine"
    wrong = (gen & (sa != sb)) | (~gen & (sa == sb))
    if wrong.any():
        i = np.flatnonzero(wrong)[0]
        raise BadInput(f"pairs.parquet: pair_id {sc['pair_id'].iloc[i]} is {kind[i]} but seed_a={sa[i]}, seed_b={sb[i]} "
                       "(genuine pairs share a seed, impostor pairs do not)")

    ia = layout.seed_index(sa, "pairs.parquet")
    ib = layout.seed_index(sb, "pairs.parquet")
    grp = layout.group_index(sc["group"].to_numpy(), "pairs.parquet")
    cond = layout.condition_index(sc["edit_attr"].to_numpy(), sc["edit_level"].to_numpy(dtype=float), "pairs.parquet")
    pid = sc["pair_id"].to_numpy()

    def side(mask: np.ndarray) -> Side:
        return Side(pair_id=pid[mask], seed_a=ia[mask], seed_b=ib[mask], group=grp[mask], cond=cond[mask],
                    score=score[mask], ok=ok[mask])

    fs = faces[FACE_COLUMNS].merge(face_status[["face_id", "status"]], on="face_id", how="left", validate="one_to_one")
    if fs["status"].isna().any():
        raise BadInput(f"{status_where}: model {model}: no enrolment status for face {fs.loc[fs['status'].isna(), 'face_id'].iloc[0]!r}")
    bad_fs = ~fs["status"].isin(STATUSES)
    if bad_fs.any():
        raise BadInput(f"{status_where}: model {model}: status {fs.loc[bad_fs, 'status'].iloc[0]!r} (expected ok|fte)")
    return ModelData(
        model=model,
        layout=layout,
        genuine=side(gen),
        impostor=side(~gen),
        face_seed=layout.seed_index(fs["seed"].to_numpy(), "faces.parquet"),
        face_group=layout.group_index(fs["group"].to_numpy(), "faces.parquet"),
        face_cond=layout.condition_index(fs["edit_attr"].to_numpy(), fs["edit_level"].to_numpy(dtype=float), "faces.parquet"),
        face_fte=(fs["status"] == "fte").to_numpy(),
    )
