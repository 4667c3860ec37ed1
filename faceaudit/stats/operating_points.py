"""Operating points besides the protocol's ``target_fmr`` (docs/statistics.md, "Operating points").

A threshold set at a target FMR on the audit's own synthetic impostors can land far from where a
deployed system works. ``analysis.thresholds`` adds two more operating points per model:

- ``fixed``: a threshold the user deploys, in the model's own similarity convention
  (``thresholds: {sface: 0.363}``); its rows have ``target_fmr`` NaN;
- ``calibration_run``: for each target FMR, the threshold that gives that FMR on the impostor scores
  of a reference run of real photographs made by ``faceaudit import folder``
  (``thresholds: {calibration_run: RUN}``), with the definition of
  :func:`faceaudit.stats.thresholds.threshold_at_fmr` (candidates: every compared score of that run),
  as NIST sets one threshold on a large real impostor set; its rows carry the target FMR.

Every result row that depends on a threshold carries ``threshold_source`` (``target_fmr``, ``fixed``
or ``calibration_run``); a row that needs no threshold (AUC-type contrasts, FTE) says ``none``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd

from faceaudit.core.errors import BadInput
from faceaudit.stats import thresholds as T

__all__ = ["THRESHOLD_SOURCES", "FIXED_KEY", "OperatingPoint", "calibration_thresholds", "check_fixed_thresholds",
           "operating_points", "main_operating_point", "calibration_scores_path"]

#: the values of the ``threshold_source`` column; ``none`` marks rows that need no threshold
THRESHOLD_SOURCES = ("target_fmr", "fixed", "calibration_run")

#: the key of a fixed threshold in ``ModelRates.thresholds`` (keys are target FMRs elsewhere; a fixed
#: threshold has none, and its rows are written with ``target_fmr`` NaN)
FIXED_KEY = -1.0


@dataclass(frozen=True)
class OperatingPoint:
    """Extra thresholds of one model: ``source`` and ``{target FMR (FIXED_KEY when fixed): threshold}``.

    Parameters
    ----------
    source : str
        ``fixed`` or ``calibration_run`` (a value of :data:`THRESHOLD_SOURCES`).
    thresholds : dict
        ``{target FMR: threshold}``; a fixed threshold is keyed by :data:`FIXED_KEY`.

    Examples
    --------
    >>> p = OperatingPoint("fixed", {FIXED_KEY: 0.363})
    >>> p.source, p.thresholds[FIXED_KEY]
    ('fixed', 0.363)
    """

    source: str
    thresholds: dict


def check_fixed_thresholds(fixed: dict, models: list[str], where: str) -> None:
    """One-line :class:`BadInput` for a fixed threshold naming a model the run does not analyse.

    Parameters
    ----------
    fixed : dict
        ``analysis.thresholds``' fixed thresholds, ``{model: threshold}``.
    models : list of str
        The run's models.
    where : str
        Prefix of the error message (e.g. the protocol file).

    Returns
    -------
    None

    Raises
    ------
    BadInput
        When a key of ``fixed`` is not in ``models``.

    Examples
    --------
    >>> check_fixed_thresholds({"sface": 0.363}, ["dlib", "sface"], "p.yaml")
    >>> check_fixed_thresholds({"arcface": 0.3}, ["dlib", "sface"], "p.yaml")
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: p.yaml: analysis.thresholds.arcface: model 'arcface' is not one of the run's models ['dlib', 'sface']
    """
    for name in fixed:
        if name not in models:
            raise BadInput(f"{where}: analysis.thresholds.{name}: model {name!r} is not one of the run's models {list(models)}")


def calibration_scores_path(run_root: str | Path, model: str) -> Path:
    """Where a calibration run keeps ``model``'s scores (``RUN/scores/MODEL.parquet``).

    Parameters
    ----------
    run_root : str or Path
        The calibration run's directory.
    model : str
        Model name.

    Returns
    -------
    pathlib.Path
        The scores file (not checked to exist).

    Examples
    --------
    >>> calibration_scores_path("runs/cal", "sface").as_posix()
    'runs/cal/scores/sface.parquet'
    """
    return Path(run_root) / "scores" / f"{model}.parquet"


def calibration_thresholds(run_root: str | Path, models: list[str], targets: list[float]) -> dict[str, dict[float, float]]:
    """For each model and target FMR, the threshold that gives that FMR on a calibration run's impostors.

    Parameters
    ----------
    run_root : str or Path
        A run made by ``faceaudit import folder`` (real photographs) and scored by every model.
    models : list of str
        The models to calibrate.
    targets : list of float
        The target FMRs.

    Returns
    -------
    dict
        ``{model: {target: threshold}}``; :func:`faceaudit.stats.thresholds.threshold_at_fmr` on the
        run's enrolled impostor scores, candidates every enrolled score of the run.

    Raises
    ------
    BadInput
        One line: no such run, a run that is not a folder import, or no impostor scores of a model.

    Examples
    --------
    >>> calibration_thresholds("/no/such/run", ["sface"], [0.01])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: analysis.thresholds.calibration_run: /no/such/run: ...
    """
    from faceaudit.run import load_run

    where = "analysis.thresholds.calibration_run"
    root = Path(run_root)
    if not (root / "protocol.yaml").is_file():
        raise BadInput(f"{where}: {root}: not a run directory (no protocol.yaml)")
    try:
        run = load_run(root)
        proto = run.protocol
    except BadInput as err:
        raise BadInput(f"{where}: {err}") from None
    if proto.dataset is None or proto.dataset.importer != "folder":
        made = "generated" if proto.dataset is None else f"imported with `faceaudit import {proto.dataset.importer}`"
        raise BadInput(f"{where}: {root}: the run was {made}; a calibration run is made by `faceaudit import folder`")
    try:
        pairs = pd.read_parquet(root / "pairs.parquet", columns=["pair_id", "kind"])
    except (OSError, ValueError) as err:
        raise BadInput(f"{where}: {root / 'pairs.parquet'}: cannot read the pairs ({err})") from None
    out: dict[str, dict[float, float]] = {}
    for model in models:
        path = calibration_scores_path(root, model)
        if not path.is_file():
            raise BadInput(f"{where}: {path}: no scores of model {model!r} in the calibration run "
                           f"(run `faceaudit audit` on it with that model)")
        scores = pd.read_parquet(path, columns=["pair_id", "score", "status"]).merge(pairs, on="pair_id", how="inner")
        ok = scores[scores["status"] == "ok"]
        imp = ok.loc[ok["kind"] == "impostor", "score"].to_numpy(dtype=float)
        if not len(imp):
            raise BadInput(f"{where}: {path}: no enrolled impostor comparison of model {model!r}")
        allv = ok["score"].to_numpy(dtype=float)
        out[model] = {float(t): T.threshold_at_fmr(imp, float(t), candidates=allv) for t in targets}
    return out


def operating_points(fixed: dict[str, float], calibrated: Optional[dict[str, dict[float, float]]], model: str) -> list[OperatingPoint]:
    """The extra operating points of one model, in report order (fixed, then calibration run).

    Parameters
    ----------
    fixed : dict
        ``{model: fixed threshold}``.
    calibrated : dict or None
        ``{model: {target: threshold}}`` (:func:`calibration_thresholds`), or None.
    model : str
        The model.

    Returns
    -------
    list of OperatingPoint
        Empty when the model has neither.

    Examples
    --------
    >>> [(p.source, p.thresholds) for p in operating_points({"sface": 0.363}, {"sface": {0.01: 0.41}}, "sface")]
    [('fixed', {-1.0: 0.363}), ('calibration_run', {0.01: 0.41})]
    >>> operating_points({"sface": 0.363}, None, "dlib")
    []
    """
    out = []
    if model in fixed:
        out.append(OperatingPoint("fixed", {FIXED_KEY: float(fixed[model])}))
    if calibrated and model in calibrated:
        out.append(OperatingPoint("calibration_run", dict(calibrated[model])))
    return out


def main_operating_point(df: Optional[pd.DataFrame]) -> Optional[pd.DataFrame]:
    """The rows of a result table at the protocol's target FMRs (and those needing no threshold):
    what every reader that predates operating points expects.

    Parameters
    ----------
    df : pandas.DataFrame or None
        A result table, optionally with ``threshold_source``.

    Returns
    -------
    pandas.DataFrame or None
        The rows with ``threshold_source`` ``target_fmr``, ``none`` or missing, index reset;
        ``df`` itself when it is None or has no ``threshold_source`` column.

    Examples
    --------
    >>> d = pd.DataFrame({"threshold_source": ["target_fmr", "fixed", "none"], "x": [1, 2, 3]})
    >>> main_operating_point(d)["x"].tolist()
    [1, 3]
    """
    if df is None or "threshold_source" not in df.columns:
        return df
    keep = df["threshold_source"].isin(["target_fmr", "none"]) | df["threshold_source"].isna()
    return df[keep.to_numpy()].reset_index(drop=True)
