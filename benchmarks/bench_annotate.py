"""Load: 20 simulated raters submit 1,000 ratings each, at once, to the real rating server.

    .venv/bin/python benchmarks/bench_annotate.py [--raters 20] [--ratings 1000] [--time-limit 300]

Builds a small run directory (drawn faces, genuine and impostor pairs) in a temporary folder, starts
`faceaudit annotate serve RUN --port 0` on 127.0.0.1 in a subprocess, and drives it with one
asyncio task per rater over HTTP (httpx): each fetches its task list, then submits answers one task
at a time (a pair task is one rating, an image task five) until it has sent ``--ratings``. About 2%
of submissions are sent twice (a replay); the server must refuse the second copy (409). Afterwards
`faceaudit annotate export RUN` writes annotations.parquet, and every rating sent must be in it
exactly once. Prints ``sent N, stored N, lost 0, duplicated 0``, the p50/p99 latency, and the ratio of
the concurrent p50 to a sequential baseline (one rater alone, measured first in the same process).
Exits 1 when anything was lost, duplicated or refused wrongly, or the time limit passed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faceaudit.rating_scales import IMAGE_QUESTIONS  # noqa: E402
from faceaudit.rundir import write_table  # noqa: E402

GROUPS = ("skin=light", "skin=intermediate", "skin=dark")
CONDITIONS = (("none", 0.0), ("lighting", -1.0), ("lighting", 1.0), ("yaw", -1.0), ("yaw", 1.0))


def build_run(root: Path, n_seeds: int = 40) -> Path:
    """A run directory with just what the rating app reads: faces.parquet, images/, pairs.parquet."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    faces = []
    for seed in range(n_seeds):
        for g_i, group in enumerate(GROUPS):
            for attr, level in CONDITIONS:
                face_id = f"s{seed:03d}_{g_i}_{attr}_{level:+g}"
                img = Image.new("RGB", (64, 64), tuple(int(v) for v in rng.integers(40, 220, 3)))
                buf = io.BytesIO()
                img.save(buf, format="PNG")
                (root / "images" / f"{face_id}.png").write_bytes(buf.getvalue())
                faces.append({"face_id": face_id, "seed": seed, "group": group, "edit_attr": attr, "edit_level": level,
                              "path": f"images/{face_id}.png"})
    faces = pd.DataFrame(faces)
    protos = faces[faces["edit_attr"] == "none"].set_index(["seed", "group"])["face_id"]
    rows = [(protos[(f.seed, f.group)], f.face_id, "genuine", f.seed, f.seed, f.group, f.edit_attr, f.edit_level)
            for f in faces[faces["edit_attr"] != "none"].itertuples()]
    for (group, attr, level), block in faces.groupby(["group", "edit_attr", "edit_level"]):
        ids, seeds = block["face_id"].to_numpy(), block["seed"].to_numpy()
        for i in range(len(ids)):
            for j in range(i + 1, min(i + 4, len(ids))):
                rows.append((ids[i], ids[j], "impostor", seeds[i], seeds[j], group, attr, level))
    pairs = pd.DataFrame(rows, columns=["face_a", "face_b", "kind", "seed_a", "seed_b", "group", "edit_attr", "edit_level"])
    pairs.insert(0, "pair_id", np.arange(len(pairs), dtype=np.int64))
    write_table(root / "faces.parquet", faces)
    write_table(root / "pairs.parquet", pairs)
    return root


def start_server(run: Path, n_raters: int) -> tuple[subprocess.Popen, dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "faceaudit.cli", "annotate", "serve", str(run), "--host", "127.0.0.1",
                             "--port", "0", "--raters", str(n_raters), "--per-item", str(n_raters), "--pairs-per-cell", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    links: dict[str, str] = {}
    deadline = time.monotonic() + 120
    while "admin" not in links:
        line = proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("server did not start")
        m = re.match(r"(\w+): (http://127\.0\.0\.1:\d+/\S+)$", line.strip())
        if m:
            links[m.group(1)] = m.group(2)
    return proc, links


class Rater:
    def __init__(self, name: str, link: str, target: int, seed: int):
        self.name, self.link, self.target = name, link, target
        self.rng = np.random.default_rng(seed)
        self.sent: set[tuple[str, str]] = set()
        self.latencies: list[float] = []
        self.replayed = self.refused = self.errors = 0
        self.tasks: list[dict] = []
        self.csrf = ""

    async def load(self, client: httpx.AsyncClient) -> None:
        r = await client.get(f"{self.link}/tasks.json")
        r.raise_for_status()
        body = r.json()
        self.csrf, self.tasks = body["csrf"], [t for t in body["tasks"] if not t["done"]]

    def answers(self, task: dict) -> dict[str, str]:
        if task["kind"] == "pair":
            return {"same": str(self.rng.integers(1, 6))}
        return {q.key: str(self.rng.choice(q.codes)) for q in IMAGE_QUESTIONS}

    async def run(self, client: httpx.AsyncClient, limit: int | None = None) -> None:
        goal = self.target if limit is None else min(self.target, len(self.sent) + limit)
        while len(self.sent) < goal and self.tasks:
            task = self.tasks.pop(0)
            ans = self.answers(task)
            if len(self.sent) + len(ans) > goal:
                continue  # an image task (5 ratings) would overshoot: skip it
            form = {"csrf": self.csrf, **ans}
            t0 = time.perf_counter()
            r = await client.post(f"{self.link}/t/{task['task_id']}", data=form, headers={"accept": "application/json"})
            self.latencies.append(time.perf_counter() - t0)
            if r.status_code != 201:
                self.errors += 1
                continue
            self.sent |= {(task["task_id"], q) for q in ans}
            if self.rng.random() < 0.02:  # a replayed submission: must be refused and not stored again
                self.replayed += 1
                r2 = await client.post(f"{self.link}/t/{task['task_id']}", data=form, headers={"accept": "application/json"})
                self.refused += r2.status_code == 409


async def drive(raters: list[Rater], baseline_n: int, time_limit: float) -> tuple[list[float], float, float]:
    limits = httpx.Limits(max_connections=len(raters) + 4, max_keepalive_connections=len(raters) + 4)
    # TCP_NODELAY as browsers set it: httpx writes headers and body separately, and Nagle + delayed
    # ACKs would otherwise add ~40 ms to every POST (a client artefact, not the server's latency)
    transport = httpx.AsyncHTTPTransport(limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    async with httpx.AsyncClient(timeout=60, transport=transport) as client:
        await asyncio.gather(*(r.load(client) for r in raters))
        # baseline: one rater alone, sequentially
        await raters[0].run(client, limit=baseline_n)
        base = list(raters[0].latencies)
        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(r.run(client) for r in raters)), timeout=time_limit)
        wall = time.perf_counter() - t0
    return base, wall, t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raters", type=int, default=20)
    ap.add_argument("--ratings", type=int, default=1000, help="ratings per rater")
    ap.add_argument("--baseline", type=int, default=200, help="sequential ratings of the first rater, measured first")
    ap.add_argument("--time-limit", type=float, default=300.0, help="seconds for the concurrent phase")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="faceaudit-bench-annotate-") as tmp:
        run = build_run(Path(tmp) / "run")
        proc, links = start_server(run, args.raters)
        try:
            raters = [Rater(name, links[name], args.ratings, i) for i, name in enumerate(sorted(n for n in links if n != "admin"))]
            try:
                base, wall, _ = asyncio.run(drive(raters, args.baseline, args.time_limit))
            except asyncio.TimeoutError:
                print(f"FAILED: the concurrent phase did not finish within {args.time_limit:.0f} s")
                return 1
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        exp = subprocess.run([sys.executable, "-m", "faceaudit.cli", "annotate", "export", str(run)], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        if exp.returncode != 0:
            print("export failed:", exp.stderr.strip())
            return 1
        ann = pd.read_parquet(run / "annotations.parquet", columns=["task_id", "question"])
    sent = set().union(*(r.sent for r in raters))
    n_sent = sum(len(r.sent) for r in raters)
    keys = list(zip(ann["task_id"], ann["question"]))
    stored = set(keys)
    lost = len(sent - stored)
    duplicated = len(keys) - len(stored)
    unexpected = len(stored - sent)
    replayed, refused = sum(r.replayed for r in raters), sum(r.refused for r in raters)
    errors = sum(r.errors for r in raters)
    conc = np.array([x for r in raters for x in (r.latencies[len(base):] if r is raters[0] else r.latencies)]) * 1000
    base_ms = np.array(base) * 1000
    n_req = len(conc)
    print(f"{len(raters)} raters x {args.ratings} ratings, {n_req} concurrent submissions in {wall:.1f} s "
          f"({n_req / wall:.0f} submissions/s, {(n_sent - len(base)) / wall:.0f} ratings/s)")
    print(f"sent {n_sent}, stored {len(keys)}, lost {lost}, duplicated {duplicated}"
          + (f", unexpected {unexpected}" if unexpected else ""))
    print(f"replayed {replayed}, refused {refused} (409); rejected first submissions {errors}")
    print(f"latency concurrent p50 {np.percentile(conc, 50):.1f} ms, p99 {np.percentile(conc, 99):.1f} ms; "
          f"sequential baseline p50 {np.percentile(base_ms, 50):.1f} ms, p99 {np.percentile(base_ms, 99):.1f} ms "
          f"(p50 ratio concurrent/sequential {np.percentile(conc, 50) / np.percentile(base_ms, 50):.1f}x with {len(raters)} raters at once)")
    ok = lost == 0 and duplicated == 0 and unexpected == 0 and refused == replayed and errors == 0 \
        and all(len(r.sent) == args.ratings for r in raters)
    if not ok:
        print("FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
