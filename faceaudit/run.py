"""The one reader of a run directory's tables: :class:`Run` and :func:`load_run`.

Every part of faceaudit that reads a finished (or partly finished) run goes through here: the
stages (``pipeline``), the analysis (``stats.analyze``), the comparison of two runs
(``stats.compare``), the model card (``report``) and notebooks (``faceaudit.api.load_run``, which
is this function). Paths and writes are :mod:`faceaudit.rundir`'s; this module only reads, so a run
opens on a machine without its models or generator (no model code is imported).

Errors are one line (:class:`~faceaudit.core.errors.BadInput`) naming the file and the stage to
run: a missing required table, a missing column, or a file that is not readable parquet.

Examples
--------
>>> import tempfile
>>> root = tempfile.mkdtemp()
>>> load_run(root)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
faceaudit.core.errors.BadInput: ...: not a run directory (no protocol.yaml); run `faceaudit generate` or `faceaudit audit` first
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Optional

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from faceaudit.core.errors import BadInput
from faceaudit.protocol import Protocol, load_protocol
from faceaudit.rundir import ManifestCorrupt, RunDir

__all__ = ["Run", "load_run", "read_parquet", "RESULT_TABLES", "SCORE_COLUMNS"]

#: results/ tables a finished analysis may hold; any other results/*.parquet is reachable through
#: ``Run.result(name)``.
RESULT_TABLES = ("error_rates", "contrasts", "dose_response", "manipulation_check")
#: the columns every scores/MODEL.parquet has (DESIGN.md)
SCORE_COLUMNS = ["pair_id", "model", "score", "status"]


def read_parquet(path: str | Path, hint: str, columns: Optional[list[str]] = None) -> pd.DataFrame:
    """A parquet table, or one line saying what is wrong with it.

    Parameters
    ----------
    path : str or Path
        The table.
    hint : str
        What to do when it is missing, appended to the message (``"run the score stage first"``).
    columns : list of str, optional
        Read only these columns; a missing one is an error naming it.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    BadInput
        The file is missing, lacks a column, or is not readable parquet.

    Examples
    --------
    >>> import tempfile, os
    >>> from faceaudit.rundir import write_table
    >>> path = os.path.join(tempfile.mkdtemp(), "t.parquet")
    >>> write_table(path, pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    >>> read_parquet(path, "write it first", ["a"])["a"].tolist()
    [1, 2]
    >>> read_parquet(path, "write it first", ["c"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    faceaudit.core.errors.BadInput: ...t.parquet: missing columns ['c']
    """
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path}: missing; {hint}")
    try:
        if columns is not None:
            have = pq.read_schema(path).names
            missing = [c for c in columns if c not in have]
            if missing:
                raise BadInput(f"{path}: missing columns {missing}")
            return pq.read_table(path, columns=columns).to_pandas()
        return pq.read_table(path).to_pandas()
    except BadInput:
        raise
    except (pa.ArrowException, OSError, ValueError) as err:  # truncated, not parquet, damaged
        raise BadInput(f"{path}: cannot read parquet ({type(err).__name__}: {err})") from None


@dataclass
class Run:
    """A run directory, with its tables loaded on first access.

    Required tables (``faces``, ``pairs``, ``scores``) raise :class:`BadInput` naming the stage to
    run when they are missing; results tables (``error_rates``, ``contrasts``, ...) are ``None``
    when the analysis did not write them. Open one with :func:`load_run`.

    Parameters
    ----------
    root : Path
        The run directory.
    protocol : Protocol
        The resolved ``protocol.yaml`` (schema-checked; model specs are not resolved).
    manifest : dict
        ``manifest.json`` (``{"stages": {}}`` when there is none yet).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from faceaudit.stats.simulate import SimSpec, write_sim_run
    >>> spec = SimSpec(n_seeds=4, groups=("skin=light", "skin=dark"), edits={"yaw": (1.0,)})
    >>> run = load_run(write_sim_run(tempfile.mkdtemp(), spec, np.random.default_rng(0)))
    >>> run.models, len(run.pairs), run.scored_pairs("sim")["status"].unique().tolist()
    (['sim'], 32, ['ok'])
    >>> run.contrasts is None  # not analysed yet
    True
    """

    root: Path
    protocol: Protocol
    manifest: dict = field(repr=False)

    @property
    def dir(self) -> RunDir:
        """The run's paths (:class:`faceaudit.rundir.RunDir`)."""
        return RunDir(self.root)

    # ---- required inputs --------------------------------------------------------------------
    @cached_property
    def faces(self) -> pd.DataFrame:
        return self._required("faces.parquet", "generate")

    @cached_property
    def pairs(self) -> pd.DataFrame:
        return self._required("pairs.parquet", "score")

    @property
    def models(self) -> list[str]:
        """Model names: those recorded by the embed stage, else those with a scores table."""
        recorded = list(self.manifest.get("models", {}))
        if recorded:
            return recorded
        return [p.stem for p in sorted((self.root / "scores").glob("*.parquet"))]

    @cached_property
    def scores(self) -> dict[str, pd.DataFrame]:
        """{model: scores table}; every model of ``models`` must have one."""
        names = self.models
        if not names:
            raise BadInput(f"{self.root}: no scores/*.parquet; run the `score` stage first")
        return {name: self._required(str(self.dir.scores(name).relative_to(self.root)), "score") for name in names}

    def score_table(self, model: str, columns: Optional[list[str]] = None) -> pd.DataFrame:
        """``scores/MODEL.parquet`` of one model (``columns``: only those, each required)."""
        return read_parquet(self.dir.scores(model), "run the score stage first", columns)

    def model_scores(self, models: Optional[list[str]] = None) -> dict[str, tuple[Path, pd.DataFrame]]:
        """The score tables the analysis covers: ``{model: (path, table)}`` in protocol order.

        With ``models`` exactly those tables are read (a leftover ``scores/*.parquet`` of another
        model never leaks into the results); otherwise every ``scores/*.parquet``. Either way only
        the models the embed stage last recorded are kept, when it recorded any. Each table must
        hold one model; two tables of one model are an error.
        """
        rd = self.dir
        paths = [rd.scores(m) for m in models] if models is not None else rd.score_tables()
        if not paths:
            raise BadInput(f"{self.root / 'scores'}: no score tables (scores/MODEL.parquet); run the score stage first")
        out: dict[str, tuple[Path, pd.DataFrame]] = {}
        for p in paths:
            df = read_parquet(p, "score table", SCORE_COLUMNS)
            names = df["model"].dropna().unique()
            if len(names) > 1:
                raise BadInput(f"{p}: more than one model in the table ({sorted(map(str, names))[:3]})")
            name = str(names[0]) if len(names) else p.stem
            if name in out:
                raise BadInput(f"{p}: model {name!r} also scored in {out[name][0]}")
            out[name] = (p, df)
        recorded = list(self.manifest.get("models", {}))
        if recorded:
            out = {m: v for m, v in out.items() if m in recorded}
            if not out:
                raise BadInput(f"{self.root / 'scores'}: no score table for the recorded models {recorded}; run the score stage")
        order = [m for m in self.protocol.models if m in out] + sorted(m for m in out if m not in self.protocol.models)
        return {m: out[m] for m in order}

    def enrolment_status(self, model: str) -> pd.DataFrame:
        """``face_id``, ``status`` of one model's ``embeddings/MODEL.parquet`` (never the vectors)."""
        return read_parquet(self.dir.embeddings(model), f"enrolment status of model {model!r} is needed for FTE rates",
                            ["face_id", "status"])

    def embeddings(self, model: str) -> pd.DataFrame:
        """``face_id``, ``status``, ``embedding`` of one model."""
        return read_parquet(self.dir.embeddings(model), "embeddings are needed to score the impostor pairs",
                            ["face_id", "status", "embedding"])

    @cached_property
    def embeddings_status(self) -> pd.DataFrame:
        """One row per (model, face): ``model``, ``face_id``, ``status`` (``ok``|``fte``).

        Only these columns are read, never the vectors. Empty when no embeddings are stored.
        """
        parts = []
        for name in self.models:
            path = self.dir.embeddings(name)
            if path.exists():
                part = read_parquet(path, "run the embed stage", ["face_id", "status"])
                part.insert(0, "model", name)
                parts.append(part)
        if not parts:
            return pd.DataFrame({"model": pd.Series(dtype=str), "face_id": pd.Series(dtype=str),
                                 "status": pd.Series(dtype=str)})
        return pd.concat(parts, ignore_index=True)

    def scored_pairs(self, model: str) -> pd.DataFrame:
        """The pairs table joined with one model's ``score`` and ``status``."""
        scores = self.scores[model][["pair_id", "score", "status"]]
        return self.pairs.merge(scores, on="pair_id", how="inner", validate="one_to_one")

    # ---- results (optional) -----------------------------------------------------------------
    def result(self, name: str) -> Optional[pd.DataFrame]:
        """``results/<name>.parquet`` as a DataFrame, or ``None`` when it was not written."""
        path = self.root / "results" / f"{name}.parquet"
        return read_parquet(path, "") if path.exists() else None

    @cached_property
    def error_rates(self) -> Optional[pd.DataFrame]:
        return self.result("error_rates")

    @cached_property
    def contrasts(self) -> Optional[pd.DataFrame]:
        return self.result("contrasts")

    @cached_property
    def dose_response(self) -> Optional[pd.DataFrame]:
        return self.result("dose_response")

    @cached_property
    def manipulation_check(self) -> Optional[pd.DataFrame]:
        return self.result("manipulation_check")

    @cached_property
    def summary(self) -> Optional[dict]:
        return self._json("results/summary.json")

    @cached_property
    def generation(self) -> Optional[dict]:
        """``results/generation.json`` (generator settings, kept and excluded seeds), if written."""
        return self._json("results/generation.json")

    @cached_property
    def annotations(self) -> Optional[pd.DataFrame]:
        """``annotations.parquet`` (exported human ratings), or ``None`` when there is none."""
        path = self.root / "annotations.parquet"
        return read_parquet(path, "") if path.exists() else None

    @property
    def result_names(self) -> list[str]:
        """Names of every ``results/*.parquet`` table present."""
        return [p.stem for p in sorted((self.root / "results").glob("*.parquet"))]

    # ---- helpers ----------------------------------------------------------------------------
    def _required(self, rel: str, stage: str) -> pd.DataFrame:
        return read_parquet(self.root / rel, f"run the `{stage}` stage first")

    def _json(self, rel: str) -> Optional[dict]:
        path = self.root / rel
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise BadInput(f"{path}: not valid JSON (line {err.lineno}): {err.msg}") from None


def load_run(run_root: str | Path) -> Run:
    """Open a run directory; its tables load on first access.

    Only the protocol's schema is checked (model specs are not resolved), so a finished run opens
    where its models (plugins, weights) are not installed. A corrupt ``manifest.json`` is refused.

    Parameters
    ----------
    run_root : str or Path
        A run directory (``protocol.yaml`` must exist).

    Returns
    -------
    Run

    Raises
    ------
    BadInput
        No such directory, no ``protocol.yaml``, an invalid protocol or a corrupt manifest.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = (root / "protocol.yaml").write_text("name: tiny\\nn_seeds: 2\\nedits: []\\n")
    >>> run = load_run(root)
    >>> run.protocol.name, run.manifest, run.error_rates is None
    ('tiny', {'stages': {}}, True)
    """
    rd = RunDir(run_root)
    if not rd.root.is_dir():
        raise BadInput(f"{rd.root}: not a run directory (no such directory)")
    if not rd.protocol.exists():
        raise BadInput(f"{rd.root}: not a run directory (no protocol.yaml); run `faceaudit generate` or "
                       "`faceaudit audit` first")
    protocol = load_protocol(rd.protocol)
    try:
        manifest = rd.read_manifest()
    except ManifestCorrupt as err:
        # One reader cannot vouch for the stages' outputs; the whole audit re-checks and rebuilds.
        raise BadInput(f"{err}; re-run `faceaudit audit {rd.protocol} --out {rd.root}` to check every stage "
                       f"and rebuild it") from None
    return Run(root=rd.root, protocol=protocol, manifest=manifest)
