"""A user's own comparison scores (``faceaudit import scores FILE.csv|FILE.parquet``).

One row per comparison: ``identity_a``, ``identity_b``, ``kind`` (``genuine``|``impostor``), ``group``,
``score`` (higher = more similar); optional ``edit_attr``/``edit_level`` (a nuisance condition of the
comparison; default ``none``) and ``model`` (default ``scores``; one scores table per model, and every
model must score the same comparisons).

No images exist, so the run is written with every table the analysis reads and nothing to embed or
score: ``faces.parquet`` holds one placeholder face per (identity, group, condition) that a
comparison uses (``path`` empty, ``source`` ``import:scores``), ``embeddings/MODEL.parquet`` only
their enrolment status (``ok``: a score table has no enrolment failures), ``pairs.parquet`` and
``scores/MODEL.parquet`` the comparisons. ``RUN/protocol.yaml`` records the dataset (importer
``scores``, observational design, groups, reference); the analysis, card, gate and ``compare`` run on
it unchanged (``api.audit_run`` runs analyze and report only).

Observational design: identity is the cluster (``seed`` = the identity's index in name order; the
name is kept in ``identity``), so intervals resample identities, and an impostor pair between two
identities is an impostor pair of two seeds (the audits' dyadic treatment). The reference group is
``reference`` (default: the first group in sorted order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from faceaudit.core.errors import BadInput
from faceaudit.rundir import write_json, write_table

__all__ = ["REQUIRED_COLUMNS", "DEFAULT_MODEL", "ImportedScores", "read_scores", "write_scores_run"]

REQUIRED_COLUMNS = ["identity_a", "identity_b", "kind", "group", "score"]
#: model name when the file has no ``model`` column
DEFAULT_MODEL = "scores"
_KINDS = ("genuine", "impostor")


@dataclass
class ImportedScores:
    """A score file read and checked, before any file is written."""

    faces: pd.DataFrame
    pairs: pd.DataFrame
    scores: dict[str, pd.DataFrame]  # model -> pair_id, model, score, status
    source: str
    reference: str
    importer: str = "scores"
    design: str = "observational"
    attributes: list[str] = field(default_factory=lambda: ["group"])

    @property
    def groups(self) -> list[str]:
        return sorted(self.pairs["group"].unique())

    @property
    def models(self) -> list[str]:
        return list(self.scores)


def _bad(path: Path, column: str, row: int, what: str) -> BadInput:
    return BadInput(f"{path}: column {column}, data row {row}: {what}")


def _read(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except Exception as err:  # unreadable or malformed file
        raise BadInput(f"{path}: cannot read ({type(err).__name__}: {' '.join(str(err).split())[:200]})") from None
    raise BadInput(f"{path}: not a .csv or .parquet file")


def _text(df: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    """The column as stripped strings; a missing value or empty text is bad input (first row named)."""
    raw = df[col]
    vals = np.array(["" if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v).strip() for v in raw],
                    dtype=object)
    empty = vals == ""
    if empty.any():
        raise _bad(path, col, int(np.flatnonzero(empty)[0]) + 1, "empty")
    return vals


def _numbers(df: pd.DataFrame, col: str, path: Path, what: str) -> np.ndarray:
    raw = df[col]
    num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(num)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _bad(path, col, i + 1, f"{raw.iloc[i]!r} is not {what}")
    return num


def read_scores(source, reference: Optional[str] = None) -> ImportedScores:
    """Read and check a score file (CSV or parquet; one row per comparison).

    Parameters
    ----------
    source : str or pathlib.Path
        The file.
    reference : str, optional
        Reference group of the contrasts (default: the first group in sorted order).

    Returns
    -------
    ImportedScores

    Raises
    ------
    BadInput
        One line naming the file, the column and the first bad data row (1-based, header excluded):
        a missing column, an empty identity or group, a group or edit named ``all``, a kind other than genuine/impostor, a score that
        is not a finite number, a genuine pair across two identities or an impostor pair within one,
        a group without a genuine pair, fewer than two groups, a model without impostor pairs, or
        models that do not score the same comparisons.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "s.csv").write_text("identity_a,identity_b,kind,group,score\\n"
    ...                              "x,x,genuine,A,0.9\\nx,y,impostor,A,0.1\\nu,u,genuine,B,0.8\\nu,v,impostor,B,0.2\\n")
    >>> imp = read_scores(d / "s.csv")
    >>> imp.groups, imp.reference, imp.models, len(imp.faces)
    (['A', 'B'], 'A', ['scores'], 4)
    >>> _ = (d / "bad.csv").write_text("identity_a,identity_b,kind,group,score\\nx,x,genuine,A,high\\n")
    >>> read_scores(d / "bad.csv")
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: ...bad.csv: column score, data row 1: 'high' is not a finite number
    """
    path = Path(source)
    if not path.is_file():
        raise BadInput(f"{path}: not found (a .csv or .parquet file with columns {', '.join(REQUIRED_COLUMNS)})")
    df = _read(path).reset_index(drop=True)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise BadInput(f"{path}: missing column {missing[0]} (need {', '.join(REQUIRED_COLUMNS)}; optional edit_attr, "
                       f"edit_level, model)")
    if df.empty:
        raise BadInput(f"{path}: no rows")
    ida, idb = _text(df, "identity_a", path), _text(df, "identity_b", path)
    kind = np.array(["" if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v).strip() for v in df["kind"]],
                    dtype=object)
    bad = ~np.isin(kind, _KINDS)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _bad(path, "kind", i + 1, f"{kind[i]!r} (expected genuine or impostor)" if kind[i] else "no kind "
                   "(expected genuine or impostor)")
    group = _text(df, "group", path)
    reserved = group == "all"
    if reserved.any():
        raise _bad(path, "group", int(np.flatnonzero(reserved)[0]) + 1,
                   "'all' is reserved (every group pooled); use another name")
    score = _numbers(df, "score", path, "a finite number")
    gen = kind == "genuine"
    wrong = (gen & (ida != idb)) | (~gen & (ida == idb))
    if wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        raise _bad(path, "identity_b", i + 1, f"{kind[i]} pair of {ida[i]!r} and {idb[i]!r} (a genuine pair compares "
                   "one identity, an impostor pair two)")
    if "edit_attr" in df.columns:
        edit_attr = np.array(["none" if (v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == "")
                              else str(v).strip() for v in df["edit_attr"]], dtype=object)
        reserved = edit_attr == "all"
        if reserved.any():
            raise _bad(path, "edit_attr", int(np.flatnonzero(reserved)[0]) + 1,
                       "'all' is reserved (the pooled condition); use another name")
    else:
        edit_attr = np.full(len(df), "none", dtype=object)
    if "edit_level" in df.columns:
        lv = df["edit_level"].where(edit_attr != "none", 0.0)
        lv = lv.where(~((edit_attr != "none") & (lv.astype(str).str.strip() == "")), np.nan)
        edit_level = _numbers(pd.DataFrame({"edit_level": lv}), "edit_level", path, "a finite number")
    else:
        edit_level = np.where(edit_attr == "none", 0.0, 1.0)
    edit_level = np.where(edit_attr == "none", 0.0, edit_level)
    model = _text(df, "model", path) if "model" in df.columns else np.full(len(df), DEFAULT_MODEL, dtype=object)

    groups = sorted(set(group))
    with_genuine = set(group[gen])
    for g in groups:
        if g not in with_genuine:
            i = int(np.flatnonzero(group == g)[0])
            raise _bad(path, "group", i + 1, f"group {g!r} has no genuine pair (its first row)")
    if len(groups) < 2:
        raise BadInput(f"{path}: column group: found {len(groups)} group {groups}; need at least 2 to compare")
    if reference is not None and reference not in groups:
        raise BadInput(f"{path}: reference group {reference!r} is not one of the file's groups {groups}")
    models = list(dict.fromkeys(model))
    for m in models:
        if not (~gen & (model == m)).any():
            i = int(np.flatnonzero(model == m)[0])
            raise _bad(path, "kind", i + 1, f"model {m!r} has no impostor pair (its first row; no threshold at a target FMR)")

    identities = sorted(set(ida) | set(idb))
    seed_of = {name: i for i, name in enumerate(identities)}
    cmp = pd.DataFrame({"identity_a": ida, "identity_b": idb, "kind": kind, "group": group, "edit_attr": edit_attr,
                        "edit_level": edit_level, "model": model, "score": score, "row": np.arange(1, len(df) + 1)})
    key_cols = ["identity_a", "identity_b", "kind", "group", "edit_attr", "edit_level"]
    # The k-th comparison of a key within a model is the same pair for every model.
    cmp["occurrence"] = cmp.groupby(["model", *key_cols], sort=False).cumcount()
    first = cmp[cmp["model"] == models[0]]
    pair_keys = first[key_cols + ["occurrence"]].reset_index(drop=True)
    pair_keys.insert(0, "pair_id", np.arange(len(pair_keys), dtype=np.int64))
    scores: dict[str, pd.DataFrame] = {}
    for m in models:
        sub = cmp[cmp["model"] == m].merge(pair_keys, on=key_cols + ["occurrence"], how="left")
        if sub["pair_id"].isna().any() or len(sub) != len(pair_keys):
            unmatched = sub[sub["pair_id"].isna()]
            if len(unmatched):
                raise _bad(path, "model", int(unmatched["row"].iloc[0]),
                           f"model {m!r} scores a comparison that model {models[0]!r} does not (every model must "
                           "score the same comparisons)")
            theirs = set(map(tuple, sub[key_cols + ["occurrence"]].itertuples(index=False)))
            lacking = first[[tuple(r) not in theirs for r in first[key_cols + ["occurrence"]].itertuples(index=False)]]
            raise _bad(path, "model", int(lacking["row"].iloc[0]),
                       f"model {m!r} does not score this comparison of model {models[0]!r} (every model must score "
                       "the same comparisons)")
        sub = sub.sort_values("pair_id")
        scores[m] = pd.DataFrame({"pair_id": sub["pair_id"].to_numpy(dtype=np.int64), "model": m,
                                  "score": sub["score"].to_numpy(dtype=float), "status": "ok"})

    pairs = pair_keys.drop(columns="occurrence")
    pairs["seed_a"] = pairs["identity_a"].map(seed_of).astype(np.int64)
    pairs["seed_b"] = pairs["identity_b"].map(seed_of).astype(np.int64)

    # one placeholder face per (identity, group, condition) that a comparison uses
    sides = pd.concat([pairs[["seed_a", "identity_a", "group", "edit_attr", "edit_level"]].set_axis(
        ["seed", "identity", "group", "edit_attr", "edit_level"], axis=1),
        pairs[["seed_b", "identity_b", "group", "edit_attr", "edit_level"]].set_axis(
        ["seed", "identity", "group", "edit_attr", "edit_level"], axis=1)])
    faces = sides.drop_duplicates().sort_values(["seed", "group", "edit_attr", "edit_level"]).reset_index(drop=True)
    cond = [("none" if a == "none" else f"{a}{lv:+g}") for a, lv in zip(faces["edit_attr"], faces["edit_level"])]
    faces.insert(0, "face_id", [f"id{s:06d}|{g}|{c}" for s, g, c in zip(faces["seed"], faces["group"], cond)])
    face_of = {k: f for f, k in zip(faces["face_id"], zip(faces["seed"], faces["group"], faces["edit_attr"],
                                                          faces["edit_level"]))}
    pairs["face_a"] = [face_of[k] for k in zip(pairs["seed_a"], pairs["group"], pairs["edit_attr"], pairs["edit_level"])]
    pairs["face_b"] = [face_of[k] for k in zip(pairs["seed_b"], pairs["group"], pairs["edit_attr"], pairs["edit_level"])]
    pairs = pairs[["pair_id", "face_a", "face_b", "kind", "seed_a", "seed_b", "group", "edit_attr", "edit_level",
                   "identity_a", "identity_b"]]
    return ImportedScores(faces=faces, pairs=pairs, scores=scores, source=str(path), reference=reference or groups[0])


def write_scores_run(imported: ImportedScores, run) -> pd.DataFrame:
    """Write the tables of a scores import into ``run`` (a :class:`faceaudit.rundir.RunDir` whose
    protocol.yaml the caller wrote: ``api.import_scores``); faces.parquet last, so an interrupted
    import never looks complete. Returns the faces table.

    Parameters
    ----------
    imported : ImportedScores
        What :func:`read_scores` returned.
    run : faceaudit.rundir.RunDir
        The run directory.

    Returns
    -------
    pandas.DataFrame
        The faces table written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from faceaudit.rundir import RunDir
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "s.csv").write_text("identity_a,identity_b,kind,group,score\\n"
    ...                              "x,x,genuine,A,0.9\\nx,y,impostor,A,0.1\\nu,u,genuine,B,0.8\\nu,v,impostor,B,0.2\\n")
    >>> run = RunDir(d / "run"); run.root.mkdir()
    >>> faces = write_scores_run(read_scores(d / "s.csv"), run)
    >>> sorted(p.name for p in run.root.rglob("*.parquet"))
    ['faces.parquet', 'pairs.parquet', 'scores.parquet', 'scores.parquet']
    """
    faces = imported.faces.copy()
    faces["path"] = ""  # no image: the comparisons were scored elsewhere
    faces["sha256"] = ""
    faces["source"] = f"import:{imported.importer}"
    faces["seed"] = faces["seed"].astype(np.int64)
    faces["edit_level"] = faces["edit_level"].astype(float)
    write_table(run.pairs, imported.pairs)
    for m, table in imported.scores.items():
        run.scores(m).parent.mkdir(parents=True, exist_ok=True)
        write_table(run.scores(m), table)
        run.embeddings(m).parent.mkdir(parents=True, exist_ok=True)
        write_table(run.embeddings(m), pd.DataFrame({"face_id": faces["face_id"], "model": m, "status": "ok"}))
    m = run.read_manifest()
    # What the embed stage records for a model it ran; the analysis covers exactly these models.
    m["models"] = {name: {"name": name, "version": "imported scores", "source": imported.source}
                   for name in imported.scores}
    m["dataset"] = {"importer": imported.importer, "source": imported.source, "design": imported.design,
                    "n_faces": int(len(faces)), "n_identities": int(faces["seed"].nunique()),
                    "n_pairs": int(len(imported.pairs))}
    write_json(run.manifest, m)
    write_table(run.faces, faces)
    return faces
