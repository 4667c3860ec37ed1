"""RUN/annotations.sqlite: the plan, the raters' tokens and every accepted rating (SQLite, WAL).

A submission is one transaction: the ``submissions`` row (primary key ``task_id``) and its ratings
go in together, so a replayed or double-clicked form is stored once and the second attempt is told
so. The store validates nothing about HTTP; :mod:`faceaudit.annotate.app` validates the input.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import pandas as pd

from faceaudit.annotate.plan import TASK_COLUMNS, PlanSpec
from faceaudit.core.errors import BadInput

FILENAME = "annotations.sqlite"
SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS raters (
    rater TEXT PRIMARY KEY, token TEXT NOT NULL UNIQUE, csrf TEXT NOT NULL, role TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY, rater TEXT NOT NULL REFERENCES raters(rater), position INTEGER NOT NULL,
    kind TEXT NOT NULL, item TEXT NOT NULL, face_a TEXT NOT NULL, face_b TEXT NOT NULL, check_kind TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_by_rater ON tasks (rater, position);
CREATE TABLE IF NOT EXISTS submissions (
    task_id TEXT PRIMARY KEY REFERENCES tasks(task_id), rater TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ratings (
    task_id TEXT NOT NULL REFERENCES submissions(task_id), question TEXT NOT NULL, rater TEXT NOT NULL,
    value INTEGER, text TEXT, created_at TEXT NOT NULL, PRIMARY KEY (task_id, question));
"""


class AlreadySubmitted(Exception):
    """The task already has a stored submission (replay or double submit)."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class Store:
    """One connection, used under a lock (the ASGI app calls it from its event loop thread)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock = threading.Lock()
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a committed rating survives an application crash; only an OS crash can
            # lose the last transactions (none can be half-written)
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as err:
            raise BadInput(f"{self.path}: not a faceaudit annotations database ({err})") from None

    def close(self) -> None:
        self.db.close()

    # ---- plan ---------------------------------------------------------------------------------
    def is_planned(self) -> bool:
        return self.meta("schema") is not None

    def meta(self, key: str) -> Optional[str]:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def install_plan(self, tasks: pd.DataFrame, spec: PlanSpec, run_name: str) -> None:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for k, v in {"schema": SCHEMA_VERSION, "run": run_name, "created_at": now(), **{
                        f"plan.{f}": str(getattr(spec, f)) for f in spec.__dataclass_fields__}}.items():
                    self.db.execute("INSERT INTO meta VALUES (?, ?)", (k, v))
                raters = sorted(tasks["rater"].unique())
                for r in raters:
                    self.db.execute("INSERT INTO raters VALUES (?, ?, ?, 'rater')",
                                    (r, secrets.token_urlsafe(24), secrets.token_urlsafe(24)))
                self.db.execute("INSERT INTO raters VALUES ('admin', ?, ?, 'admin')",
                                (secrets.token_urlsafe(24), secrets.token_urlsafe(24)))
                self.db.executemany(f"INSERT INTO tasks ({', '.join(TASK_COLUMNS)}) VALUES ({', '.join('?' * len(TASK_COLUMNS))})",
                                    tasks[TASK_COLUMNS].itertuples(index=False, name=None))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def plan_spec(self) -> dict:
        return {k[5:]: v for k, v in self.db.execute("SELECT key, value FROM meta WHERE key LIKE 'plan.%'")}

    # ---- identities ---------------------------------------------------------------------------
    def rater_by_token(self, token: str) -> Optional[dict]:
        row = self.db.execute("SELECT rater, csrf, role FROM raters WHERE token = ?", (token,)).fetchone()
        return {"rater": row[0], "csrf": row[1], "role": row[2]} if row else None

    def tokens(self) -> list[tuple[str, str, str]]:
        """(rater, role, token), raters first."""
        return list(self.db.execute("SELECT rater, role, token FROM raters ORDER BY role DESC, rater"))

    # ---- tasks --------------------------------------------------------------------------------
    def task(self, task_id: str, rater: str) -> Optional[dict]:
        """The task, only when it belongs to ``rater`` (another rater's task looks like no task)."""
        cur = self.db.execute(f"SELECT {', '.join(TASK_COLUMNS)} FROM tasks WHERE task_id = ? AND rater = ?", (task_id, rater))
        row = cur.fetchone()
        return dict(zip(TASK_COLUMNS, row)) if row else None

    def next_task(self, rater: str) -> Optional[dict]:
        cur = self.db.execute(
            f"SELECT {', '.join('t.' + c for c in TASK_COLUMNS)} FROM tasks t LEFT JOIN submissions s USING (task_id) "
            "WHERE t.rater = ? AND s.task_id IS NULL ORDER BY t.position LIMIT 1", (rater,))
        row = cur.fetchone()
        return dict(zip(TASK_COLUMNS, row)) if row else None

    def tasks_of(self, rater: str) -> list[dict]:
        cur = self.db.execute(
            f"SELECT {', '.join('t.' + c for c in TASK_COLUMNS)}, s.task_id IS NOT NULL FROM tasks t "
            "LEFT JOIN submissions s USING (task_id) WHERE t.rater = ? ORDER BY t.position", (rater,))
        return [dict(zip(TASK_COLUMNS + ["done"], r)) for r in cur]

    def progress(self) -> pd.DataFrame:
        return pd.read_sql_query(
            "SELECT r.rater, COUNT(t.task_id) AS n_tasks, COUNT(s.task_id) AS n_done, "
            "MAX(s.created_at) AS last_at FROM raters r JOIN tasks t USING (rater) "
            "LEFT JOIN submissions s USING (task_id) WHERE r.role = 'rater' GROUP BY r.rater ORDER BY r.rater", self.db)

    def face_in_tasks(self, rater: str, face_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM tasks WHERE rater = ? AND (face_a = ? OR face_b = ?) LIMIT 1",
                               (rater, face_id, face_id)).fetchone() is not None

    # ---- ratings ------------------------------------------------------------------------------
    def submit(self, task_id: str, rater: str, answers: dict[str, int], comment: str = "") -> str:
        """Store one task's answers atomically; raises :class:`AlreadySubmitted` on a replay."""
        ts = now()
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                try:
                    self.db.execute("INSERT INTO submissions VALUES (?, ?, ?)", (task_id, rater, ts))
                except sqlite3.IntegrityError:
                    raise AlreadySubmitted(task_id) from None
                self.db.executemany("INSERT INTO ratings VALUES (?, ?, ?, ?, NULL, ?)",
                                    [(task_id, q, rater, int(v), ts) for q, v in answers.items()])
                if comment:
                    self.db.execute("INSERT INTO ratings VALUES (?, 'comment', ?, NULL, ?, ?)", (task_id, rater, comment, ts))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return ts

    def ratings(self) -> pd.DataFrame:
        """One row per accepted rating, joined with its task."""
        return pd.read_sql_query(
            "SELECT g.rater, g.task_id, t.kind, t.item, g.question, g.value, g.text, g.created_at, t.check_kind, "
            "t.face_a, t.face_b FROM ratings g JOIN tasks t USING (task_id) ORDER BY g.created_at, g.task_id, g.question",
            self.db)

    def recent_comments(self, n: int = 20) -> list[dict]:
        cur = self.db.execute("SELECT rater, text, created_at FROM ratings WHERE question = 'comment' "
                              "ORDER BY created_at DESC LIMIT ?", (n,))
        return [{"rater": r, "text": t, "created_at": c} for r, t, c in cur]


def open_store(run_root: str | Path, must_exist: bool = False) -> Store:
    path = Path(run_root) / FILENAME
    if must_exist and not path.exists():
        raise BadInput(f"{path}: no annotations yet; start collecting with `faceaudit annotate serve {run_root}`")
    return Store(path)


def ensure_plan(run_root: str | Path, spec: Optional[PlanSpec] = None) -> Store:
    """Open RUN/annotations.sqlite, planning the tasks on first use.

    An existing plan is kept (raters resume where they stopped); asking for a different number of
    raters than it was planned with is an error rather than a silent re-plan.
    """
    from faceaudit.annotate.plan import build_plan

    root = Path(run_root)
    for name in ("faces.parquet", "pairs.parquet"):
        if not (root / name).exists():
            raise BadInput(f"{root / name}: missing; rating needs a run with faces and pairs (run `faceaudit audit` first)")
    path = root / FILENAME
    if path.exists():
        store = Store(path)
        if store.is_planned():
            planned = int(store.plan_spec().get("n_raters", "0"))
            if spec is not None and spec.n_raters != planned:
                store.close()
                raise BadInput(f"{store.path}: already planned for {planned} raters, not {spec.n_raters}; "
                               "keep --raters as it was or move the file away to start over")
            return store
        store.close()
    # plan first, then create the database: a failed plan leaves no annotations.sqlite behind
    try:
        faces = pd.read_parquet(root / "faces.parquet")
        pairs = pd.read_parquet(root / "pairs.parquet")
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise BadInput(f"{root}: cannot read faces/pairs tables ({type(err).__name__}: {err})") from None
    for name, table, cols in (("faces.parquet", faces, ["face_id", "seed", "group", "edit_attr", "edit_level", "path"]),
                              ("pairs.parquet", pairs, ["pair_id", "face_a", "face_b", "kind", "group", "edit_attr", "edit_level"])):
        missing = [c for c in cols if c not in table.columns]
        if missing:
            raise BadInput(f"{root / name}: missing columns {missing}")
    tasks = build_plan(faces, pairs, spec or PlanSpec())
    store = Store(path)
    store.install_plan(tasks, spec or PlanSpec(), root.resolve().name)
    return store
