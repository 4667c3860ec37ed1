"""Manipulation check: did each edit change what it was meant to change, and nothing else?

For every edited attribute and level, the change of every measure from the seed's prototype in the
same group (paired within seed + group), averaged over seeds and groups. The target measure's row
has ``is_target = True``; the other rows are leakage. The protected skin levels are checked the same
way, each level's prototype against the reference level's prototype of the same seed
(``edit_attr = "skin_tone"``, ``edit_level`` = the level's mean prototype ITA, ``edit_label`` = its
name). With embeddings, ``measure = "identity_sim:<model>"`` rows give the mean cosine similarity
between the prototype's and the edited face's embeddings (identity drift; 1 = unchanged), over
pairs where both faces enrolled.

Leakage covers the headline measures and the exposure of the non-face pixels (border, background
and hair-band luma, white balance; faceaudit.measure.exposure): for a skin level, the
``measured_border_luma`` row is the within-seed exposure change that came with the skin change.
With the protected ``levels``, two share rows say whether targets were reached:
``measure = "in_bin"`` (protected levels: share of seeds whose prototype's measured ITA lies in the
level's bin) and ``measure = "skin_bin_kept"`` (nuisance edits: share of edited faces whose ITA is
still in their group's bin); their ``mean_change`` is the share.

Monk Skin Tone (``measured_monk``, 1..10) sits beside ITA: every skin level gets ``monk_mean`` and
``monk_median`` rows (the Monk class of its prototypes; ``mean_change`` holds the value) and every
nuisance edit level a ``monk_changed`` row (share of edited faces whose Monk class differs from
their prototype's). A prompted race level gets an ``in_bin`` row too when ``race_classes`` maps it
to a GEAR class: the share of its prototypes whose most probable GEAR perceived-race class is that
class (an indicative check, not ground truth); the GEAR probabilities' changes are leakage rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from faceaudit.core.errors import BadInput
from faceaudit.measure import EXPOSURE_MEASURES, MEASURES, MONK_COLUMN
from faceaudit.measure.gear import COLUMNS as GEAR_COLUMNS, top_class

__all__ = ["manipulation_check", "COLUMNS", "TARGETS", "SKIN_EDIT", "GENDER_EDIT", "IN_BIN", "SKIN_BIN_KEPT",
           "INDEPENDENT_IN_BIN", "INDEPENDENT_ORDER", "PROTECTED_COLUMNS", "PERCEIVED_MEASURES", "MONK_MEAN",
           "MONK_MEDIAN", "MONK_CHANGED"]

SKIN_EDIT = "skin_tone"
COLUMNS = ["edit_attr", "edit_label", "edit_level", "measure", "mean_change", "sd_change", "n", "is_target",
           "max_abs_change"]
#: the measure each nuisance edit targets (the exposure edit is stated in SDs of border luma; the
#: age edit in SDs of faceres' predicted age, checked also by SSR-Net's)
TARGETS = {**MEASURES, "exposure": EXPOSURE_MEASURES["border_luma"], "age": "measured_age"}
IN_BIN = "in_bin"
SKIN_BIN_KEPT = "skin_bin_kept"
GENDER_EDIT = "gender"
#: faces-table columns that hold a protected level (faceaudit.protocol.FACES_COLUMN)
PROTECTED_COLUMNS = ["skin_tone", "gender", "race", "age_group"]
#: perceived-attribute columns (faceaudit.generate.dcgan.perceived_directions), where the design measured them
PERCEIVED_MEASURES = ["measured_gender_pmale", "measured_gender_pmale_independent", "measured_age",
                      "measured_age_independent"]
#: share rows of a protected gender level: faceres and the independent classifier classify the
#: prototype as the level; and the share of seeds whose independent P(male) (mean over the seed's
#: prototypes at the level) moved from the reference level the way the level's target did
INDEPENDENT_IN_BIN = "in_bin_independent"
INDEPENDENT_ORDER = "independent_order"
#: Monk Skin Tone beside ITA: a skin level's mean / median Monk class, and the share of an edit's
#: faces whose Monk class changed from their prototype's
MONK_MEAN = "monk_mean"
MONK_MEDIAN = "monk_median"
MONK_CHANGED = "monk_changed"


def _stats(values: np.ndarray) -> tuple[float, float, int, float]:
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return float("nan"), float("nan"), 0, float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan"), int(len(v)), float(np.abs(v).max())


def _embedding_lookup(table: pd.DataFrame, where: str) -> tuple[dict[str, int], np.ndarray]:
    missing = [c for c in ("face_id", "status", "embedding") if c not in table.columns]
    if missing:
        raise BadInput(f"{where}: missing columns {missing}")
    ok = table[table["status"] == "ok"]
    if len(ok) == 0:
        return {}, np.zeros((0, 0))
    mat = np.stack([np.asarray(e, dtype=np.float64) for e in ok["embedding"]])
    mat /= np.linalg.norm(mat, axis=1, keepdims=True)
    return {fid: i for i, fid in enumerate(ok["face_id"])}, mat


def _identity_sims(a_ids: pd.Series, b_ids: pd.Series, lookup: dict[str, int], mat: np.ndarray) -> np.ndarray:
    ia = np.array([lookup.get(f, -1) for f in a_ids])
    ib = np.array([lookup.get(f, -1) for f in b_ids])
    both = (ia >= 0) & (ib >= 0)
    out = np.full(len(ia), np.nan)
    if both.any():
        out[both] = (mat[ia[both]] * mat[ib[both]]).sum(axis=1)
    return out


def manipulation_check(
    faces: pd.DataFrame,
    embeddings_by_model: dict[str, pd.DataFrame] | None = None,
    reference: str | None = None,
    levels: list | None = None,
    gender_levels: list | None = None,
    gender_reference: str | None = None,
    prompt_references: dict[str, str] | None = None,
    race_classes: dict[str, str | None] | None = None,
) -> pd.DataFrame:
    """Long table ``edit_attr, edit_label, edit_level, measure, mean_change, sd_change, n, is_target,
    max_abs_change``.

    ``reference``: the skin level the others are compared with; default the level whose prototypes
    have the highest mean ITA (the lightest). ``levels``: the protocol's protected levels (objects
    with ``name, ita_min, ita_max``); with them the ``in_bin`` and ``skin_bin_kept`` rows are added.
    ``gender_levels`` / ``gender_reference``: the protected gender levels (``name, p_male_min,
    p_male_max, target``); with them every gender level gets the same rows as a skin level (paired
    within seed and skin level; target ``measured_gender_pmale``) plus its classification shares.

    Parameters
    ----------
    faces : pandas.DataFrame
        The faces table with its ``measured_*`` columns.
    embeddings_by_model : dict of str to pandas.DataFrame, optional
        Per model: ``face_id, status, embedding``; adds the ``identity_sim:<model>`` rows.
    reference : str, optional
        The skin level the others are compared with.
    levels : list, optional
        The protected skin levels.
    gender_levels : list, optional
        The protected gender levels.
    gender_reference : str, optional
        The gender level the others are compared with.
    prompt_references : dict of str to str, optional
        Per attribute only a prompt sets (perceived race, age group): its reference level; every
        measure's change against it is reported.
    race_classes : dict of str to str or None, optional
        Race level -> GEAR class (``PromptAttributeSpec.measured_classes``); a mapped level gets an
        ``in_bin`` row (share of its prototypes whose top GEAR class is the mapped one).

    Returns
    -------
    pandas.DataFrame
        Columns ``COLUMNS``, one row per (edit, level, measure).

    Raises
    ------
    BadInput
        A needed column of ``faces`` is missing.

    Examples
    --------
    >>> faces = pd.DataFrame({"face_id": list("abcd"), "seed": [0, 0, 1, 1], "group": "skin=light",
    ...                       "edit_attr": ["none", "lighting"] * 2, "edit_level": [0.0, 1.0] * 2,
    ...                       "measured_lighting": [0.1, 0.5, 0.0, 0.6], "measured_yaw": [2.0, 2.0, -1.0, -0.5]})
    >>> t = manipulation_check(faces)
    >>> t[["measure", "mean_change", "n", "is_target"]].values.tolist()  # the target moved; yaw leaked a little
    [['measured_yaw', 0.25, 2, False], ['measured_lighting', 0.5, 2, True]]
    """
    needed = {"face_id", "seed", "group", "edit_attr", "edit_level"}
    missing = needed - set(faces.columns)
    if missing:
        raise BadInput(f"faces table: missing columns {sorted(missing)}")
    measures = [c for c in [*MEASURES.values(), MONK_COLUMN, *EXPOSURE_MEASURES.values(), *PERCEIVED_MEASURES,
                            *GEAR_COLUMNS] if c in faces.columns]
    # a protected level is paired with the reference level's prototype of the same seed *and* the
    # same levels of every other protected attribute (skin: same gender; gender: same skin level)
    present = [c for c in PROTECTED_COLUMNS if c in faces.columns]

    def pairing(attr_col: str) -> list[str]:
        return ["seed"] + [c for c in present if c != attr_col]

    skin_pair = pairing("skin_tone")
    bins = {lv.name: (float(lv.ita_min), float(lv.ita_max)) for lv in (levels or [])}
    lookups = {m: _embedding_lookup(t, f"embeddings/{m}.parquet") for m, t in (embeddings_by_model or {}).items()}
    protos = faces[faces["edit_attr"] == "none"]
    edited = faces[faces["edit_attr"] != "none"]
    rows: list[dict] = []

    def add_rows(attr: str, label: str, level: float, a: pd.DataFrame, b: pd.DataFrame, target: str | None) -> None:
        # a = prototype rows, b = edited rows, aligned (same seed)
        for col in measures:
            mean, sd, n, mx = _stats(b[col].to_numpy(dtype=np.float64) - a[col].to_numpy(dtype=np.float64))
            rows.append(dict(edit_attr=attr, edit_label=label, edit_level=level, measure=col, mean_change=mean,
                             sd_change=sd, n=n, is_target=col == target, max_abs_change=mx))
        for model, (lookup, mat) in lookups.items():
            mean, sd, n, _ = _stats(_identity_sims(a["face_id"], b["face_id"], lookup, mat))
            rows.append(dict(edit_attr=attr, edit_label=label, edit_level=level, measure=f"identity_sim:{model}",
                             mean_change=mean, sd_change=sd, n=n, is_target=False, max_abs_change=np.nan))

    def add_value(attr: str, label: str, level: float, measure: str, values: np.ndarray, how) -> None:
        # one summary of a column over a level's faces, in mean_change (NaN-free values only)
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        rows.append(dict(edit_attr=attr, edit_label=label, edit_level=level, measure=measure,
                         mean_change=float(how(v)) if len(v) else float("nan"), sd_change=np.nan, n=int(len(v)),
                         is_target=False, max_abs_change=np.nan))

    def add_share(attr: str, label: str, level: float, measure: str, rows_b: pd.DataFrame) -> None:
        # share of faces whose measured ITA lies in the bin of their own skin level
        if not bins or "measured_skin_ita" not in rows_b.columns:
            return
        lo = rows_b["skin_tone"].map(lambda k: bins.get(k, (np.nan, np.nan))[0]).to_numpy(dtype=np.float64)
        hi = rows_b["skin_tone"].map(lambda k: bins.get(k, (np.nan, np.nan))[1]).to_numpy(dtype=np.float64)
        ita = rows_b["measured_skin_ita"].to_numpy(dtype=np.float64)
        known = np.isfinite(ita) & np.isfinite(lo)
        inside = (ita >= lo) & (ita < hi)
        share = float(inside[known].mean()) if known.any() else float("nan")
        rows.append(dict(edit_attr=attr, edit_label=label, edit_level=level, measure=measure, mean_change=share,
                         sd_change=np.nan, n=int(known.sum()), is_target=False, max_abs_change=np.nan))

    # protected levels against the reference level, paired within seed
    if len(protos) and "measured_skin_ita" in protos.columns and "skin_tone" in protos.columns:
        level_ita = protos.groupby("skin_tone")["measured_skin_ita"].mean().sort_values(ascending=False)
        ref = reference or str(level_ita.index[0])
        if ref not in level_ita.index:
            raise BadInput(f"manipulation check: reference level {ref!r} not in the faces table ({list(level_ita.index)})")
        ref_rows = protos[protos["skin_tone"] == ref].set_index(skin_pair)
        for level_name in level_ita.index:
            lv_rows = protos[protos["skin_tone"] == level_name].set_index(skin_pair)
            label = f"{level_name} vs {ref}" if level_name != ref else f"{ref} (reference)"
            add_share(SKIN_EDIT, label, float(level_ita[level_name]), IN_BIN, lv_rows)
            if MONK_COLUMN in lv_rows.columns:
                add_value(SKIN_EDIT, label, float(level_ita[level_name]), MONK_MEAN, lv_rows[MONK_COLUMN], np.mean)
                add_value(SKIN_EDIT, label, float(level_ita[level_name]), MONK_MEDIAN, lv_rows[MONK_COLUMN], np.median)
            if level_name == ref:
                continue
            common = ref_rows.index.intersection(lv_rows.index).sort_values()
            add_rows(SKIN_EDIT, label, float(level_ita[level_name]),
                     ref_rows.loc[common], lv_rows.loc[common], MEASURES["skin_ita"])

    if gender_levels and len(protos) and "gender" in protos.columns and "measured_gender_pmale" in protos.columns:
        _gender_rows(protos, gender_levels, gender_reference, add_rows, rows, pairing("gender"))
    # attributes only a prompt sets (perceived race, age group): no measure of their own, so every
    # measure's change against the reference level is reported (skin tone, perceived gender and age)
    for attr, ref in (prompt_references or {}).items():
        if attr not in protos.columns or ref not in set(protos[attr]):
            continue
        ref_rows = protos[protos[attr] == ref].set_index(pairing(attr))
        for level_name in dict.fromkeys(protos[attr]):
            cls = (race_classes or {}).get(level_name) if attr == "race" else None
            if cls is not None:
                top = top_class(protos[protos[attr] == level_name])
                label = f"{level_name} vs {ref}" if level_name != ref else f"{ref} (reference)"
                add_value(attr, label, float("nan"), IN_BIN, (top[top.notna()] == cls).astype(float), np.mean)
            if level_name == ref:
                continue
            lv_rows = protos[protos[attr] == level_name].set_index(pairing(attr))
            common = ref_rows.index.intersection(lv_rows.index).sort_values()
            add_rows(attr, f"{level_name} vs {ref}", float("nan"), ref_rows.loc[common], lv_rows.loc[common], None)

    # nuisance edits against the prototype of the same seed and group
    if len(edited):
        proto_idx = protos.set_index(["seed", "group"])
        for attr in dict.fromkeys(edited["edit_attr"]):  # order of appearance
            target = TARGETS.get(attr)
            sub = edited[edited["edit_attr"] == attr]
            for level in sorted(sub["edit_level"].unique()):
                b = sub[sub["edit_level"] == level]
                key = pd.MultiIndex.from_arrays([b["seed"], b["group"]])
                has = key.isin(proto_idx.index)
                b = b[has]
                a = proto_idx.loc[key[has]].reset_index()
                add_rows(attr, f"{float(level):+g}", float(level), a, b.reset_index(drop=True), target)
                add_share(attr, f"{float(level):+g}", float(level), SKIN_BIN_KEPT, b)
                if MONK_COLUMN in b.columns:
                    before, after = a[MONK_COLUMN].to_numpy(dtype=np.float64), b[MONK_COLUMN].to_numpy(dtype=np.float64)
                    known = np.isfinite(before) & np.isfinite(after)
                    add_value(attr, f"{float(level):+g}", float(level), MONK_CHANGED,
                              np.where(known, (before != after).astype(float), np.nan), np.mean)

    out = pd.DataFrame(rows, columns=COLUMNS)
    out["n"] = out["n"].astype(np.int64)
    out["is_target"] = out["is_target"].astype(bool)
    return out


def _gender_rows(protos: pd.DataFrame, levels: list, reference: str, add_rows, rows: list[dict], pair: list[str]) -> None:
    """Protected gender levels: each against the reference level's prototype of the same seed and the
    same levels of the other protected attributes (``pair``), plus whether both classifiers put the
    prototypes where the level says."""
    by_name = {lv.name: lv for lv in levels}
    ref = by_name[reference]
    # the validating classifier (the one that did not place the cells); older runs name it "independent"
    validation = next(c for c in ("measured_gender_pmale_validation", "measured_gender_pmale_independent") if c in protos.columns)
    ref_rows = protos[protos["gender"] == reference].set_index(pair)
    for lv in levels:
        lv_rows = protos[protos["gender"] == lv.name].set_index(pair)
        label = f"{lv.name} vs {reference}" if lv.name != reference else f"{reference} (reference)"
        p = lv_rows["measured_gender_pmale"].to_numpy(dtype=np.float64)
        level_value = float(np.nanmean(p)) if np.isfinite(p).any() else float("nan")
        for measure, col in ((IN_BIN, "measured_gender_pmale"), (INDEPENDENT_IN_BIN, validation)):
            v = lv_rows[col].to_numpy(dtype=np.float64)
            known = np.isfinite(v)
            share = float(np.mean([lv.contains(x) for x in v[known]])) if known.any() else float("nan")
            rows.append(dict(edit_attr=GENDER_EDIT, edit_label=label, edit_level=level_value, measure=measure,
                             mean_change=share, sd_change=np.nan, n=int(known.sum()), is_target=False, max_abs_change=np.nan))
        if lv.name == reference:
            continue
        common = ref_rows.index.intersection(lv_rows.index).sort_values()
        a, b = ref_rows.loc[common], lv_rows.loc[common]
        add_rows(GENDER_EDIT, label, level_value, a, b, "measured_gender_pmale")
        # the independent classifier's P(male) moved in the direction of the level's target, per seed
        # (its prototypes' mean over the other protected levels, so one noisy render does not decide)
        col = validation
        d = (b[col].groupby(level="seed").mean() - a[col].groupby(level="seed").mean()).to_numpy(dtype=np.float64)
        known = np.isfinite(d)
        share = float((np.sign(d[known]) == np.sign(lv.target - ref.target)).mean()) if known.any() else float("nan")
        rows.append(dict(edit_attr=GENDER_EDIT, edit_label=label, edit_level=level_value, measure=INDEPENDENT_ORDER,
                         mean_change=share, sd_change=np.nan, n=int(known.sum()), is_target=False, max_abs_change=np.nan))
