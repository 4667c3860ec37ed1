"""Synthetic score tables with the real pair structure and planted effects.

Used by the statistics tests (coverage of CIs, power of the mixed model) and the benchmark. The
tables have the run-directory columns, so they go through exactly the code a real run does.

Design: ``n_seeds`` seeds x groups x (prototype + every edit level). Genuine pairs: prototype of
(seed, group) vs each of its edits. Impostor pairs: every pair of distinct seeds within (group,
condition), optionally subsampled.

Score model (all effects additive, on a similarity scale):
- genuine ``= gen_mean + gen_shift[group] + slope[group][attr] * |level| + signed[group] * level
  + u_seed + e``,   ``u_seed ~ N(0, seed_sd)`` shared by every genuine pair of the seed (all groups),
  ``e ~ N(0, noise_sd)``;
- impostor ``= imp_mean + imp_shift[group] + v_a + v_b + e``, ``v_seed ~ N(0, imp_seed_sd)`` so
  impostor pairs sharing a seed are correlated (what makes naive row-level CIs too narrow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

__all__ = ["SimSpec", "simulate_run_tables", "write_sim_run", "example_model_data"]


@dataclass
class SimSpec:
    """The design and the planted effects of a simulated run (score model: module docstring).

    Parameters
    ----------
    n_seeds : int
        Seeds (identities); every seed is rendered in every group and edit condition.
    groups : tuple of str
        Protected groups (``skin=<level>`` names for :func:`write_sim_run`).
    edits : dict of str to tuple of float
        Edit levels per nuisance attribute (the prototype, level 0, is always added).
    gen_mean, imp_mean : float
        Mean genuine and impostor score.
    gen_shift, imp_shift : dict of str to float
        Per group: shift of the genuine (impostor) scores.
    abs_slope : dict
        Per group, per attribute: change of the genuine score per unit ``|level|``.
    signed_slope : dict of str to float
        Per group: change of the genuine score per unit signed level.
    default_abs_slope : float
        The ``|level|`` slope where ``abs_slope`` names none.
    seed_sd, imp_seed_sd, noise_sd : float
        SDs of the genuine seed effect, the impostor seed effect and the pair noise.
    max_impostors_per_condition : int, optional
        Subsample the impostor pairs of each (group, condition) to at most this many.
    fte_prob : float
        Chance that a face fails to enrol (its pairs get status ``fte``).

    Examples
    --------
    >>> spec = SimSpec(n_seeds=4, groups=("skin=light",), edits={"yaw": (1.0,)})
    >>> spec.n_seeds, spec.gen_mean, spec.edits
    (4, 0.6, {'yaw': (1.0,)})
    """

    n_seeds: int = 60
    groups: tuple[str, ...] = ("skin=light", "skin=intermediate", "skin=dark")
    edits: dict[str, tuple[float, ...]] = field(default_factory=lambda: {"lighting": (-2.0, -1.0, 1.0, 2.0)})
    gen_mean: float = 0.6
    imp_mean: float = 0.1
    gen_shift: dict[str, float] = field(default_factory=dict)
    imp_shift: dict[str, float] = field(default_factory=dict)
    #: per group, per attribute: change of the genuine score per unit |level|
    abs_slope: dict[str, dict[str, float]] = field(default_factory=dict)
    #: per group: change of the genuine score per unit signed level (any attribute)
    signed_slope: dict[str, float] = field(default_factory=dict)
    default_abs_slope: float = -0.03
    seed_sd: float = 0.06
    imp_seed_sd: float = 0.04
    noise_sd: float = 0.06
    max_impostors_per_condition: Optional[int] = None
    fte_prob: float = 0.0


def _conditions(spec: SimSpec) -> list[tuple[str, float]]:
    return [("none", 0.0)] + [(a, float(lv)) for a, lvs in spec.edits.items() for lv in lvs]


def simulate_run_tables(spec: SimSpec, rng: np.random.Generator, model: str = "sim") -> dict[str, pd.DataFrame]:
    """Simulated tables of one model, with the columns of a run directory's tables.

    Parameters
    ----------
    spec : SimSpec
        Design and planted effects.
    rng : numpy.random.Generator
        Source of every random draw (scores, FTEs, impostor subsampling).
    model : str
        Written in the scores table's ``model`` column.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``faces`` (one row per face), ``pairs`` (genuine, then impostor pairs), ``scores`` (per
        pair: ``score``, ``status``) and ``status`` (per face: enrolment status).

    Examples
    --------
    >>> spec = SimSpec(n_seeds=5, groups=("skin=light", "skin=dark"), edits={"lighting": (-1.0, 1.0)})
    >>> tb = simulate_run_tables(spec, np.random.default_rng(0))
    >>> len(tb["faces"])  # seeds x groups x (prototype + 2 edits)
    30
    >>> tb["pairs"]["kind"].value_counts().to_dict()  # 5*2*2 genuine; C(5,2) per group and condition
    {'impostor': 60, 'genuine': 20}
    >>> bool((tb["scores"]["status"] == "ok").all())
    True
    """
    conds = _conditions(spec)
    S, G, C = spec.n_seeds, len(spec.groups), len(conds)
    seeds = np.arange(S, dtype=np.int64)
    s_idx, g_idx, c_idx = (x.ravel() for x in np.meshgrid(np.arange(S), np.arange(G), np.arange(C), indexing="ij"))
    attr = np.array([conds[c][0] for c in range(C)], dtype=object)[c_idx]
    level = np.array([conds[c][1] for c in range(C)])[c_idx]
    groups = np.array(spec.groups, dtype=object)[g_idx]
    face_id = np.array([f"s{s:05d}_{g}_{c}" for s, g, c in zip(s_idx, g_idx, c_idx)], dtype=object)
    faces = pd.DataFrame({"face_id": face_id, "seed": seeds[s_idx], "group": groups,
                          "skin_tone": [g.split("=", 1)[-1] for g in groups],
                          "edit_attr": attr, "edit_level": level})
    fte = rng.random(len(faces)) < spec.fte_prob
    status = pd.DataFrame({"face_id": face_id, "status": np.where(fte, "fte", "ok")})

    # genuine: prototype (c=0) vs each edit of the same (seed, group)
    face_pos = (s_idx * G + g_idx) * C + c_idx  # == arange
    edit = c_idx > 0
    gs, gg, gc = s_idx[edit], g_idx[edit], c_idx[edit]
    proto = (gs * G + gg) * C
    gen = pd.DataFrame({"face_a": face_id[proto], "face_b": face_id[face_pos[edit]], "kind": "genuine",
                        "seed_a": gs, "seed_b": gs, "group": groups[edit], "edit_attr": attr[edit],
                        "edit_level": level[edit]})
    u = rng.normal(0, spec.seed_sd, S)
    g_names = np.array(spec.groups, dtype=object)
    shift = np.array([spec.gen_shift.get(g, 0.0) for g in spec.groups])
    sslope = np.array([spec.signed_slope.get(g, 0.0) for g in spec.groups])
    aslope = np.array([[spec.abs_slope.get(g, {}).get(a, spec.default_abs_slope) for a, _ in conds] for g in spec.groups])
    lv = level[edit]
    gscore = (spec.gen_mean + shift[gg] + aslope[gg, gc] * np.abs(lv) + sslope[gg] * lv + u[gs]
              + rng.normal(0, spec.noise_sd, len(gs)))

    # impostors: all pairs of distinct seeds within (group, condition)
    ia, ib = np.triu_indices(S, k=1)
    parts_a, parts_b, parts_g, parts_c = [], [], [], []
    for g in range(G):
        for c in range(C):
            a, b = ia, ib
            if spec.max_impostors_per_condition is not None and len(a) > spec.max_impostors_per_condition:
                keep = np.sort(rng.choice(len(a), spec.max_impostors_per_condition, replace=False))
                a, b = a[keep], b[keep]
            parts_a.append(a); parts_b.append(b)
            parts_g.append(np.full(len(a), g)); parts_c.append(np.full(len(a), c))
    a, b = np.concatenate(parts_a), np.concatenate(parts_b)
    ig, ic = np.concatenate(parts_g), np.concatenate(parts_c)
    fa, fb = (a * G + ig) * C + ic, (b * G + ig) * C + ic
    imp = pd.DataFrame({"face_a": face_id[fa], "face_b": face_id[fb], "kind": "impostor", "seed_a": seeds[a],
                        "seed_b": seeds[b], "group": g_names[ig], "edit_attr": attr[fa], "edit_level": level[fa]})
    v = rng.normal(0, spec.imp_seed_sd, S)
    ishift = np.array([spec.imp_shift.get(g, 0.0) for g in spec.groups])
    iscore = spec.imp_mean + ishift[ig] + v[a] + v[b] + rng.normal(0, spec.noise_sd, len(a))

    pairs = pd.concat([gen, imp], ignore_index=True)
    pairs.insert(0, "pair_id", np.arange(len(pairs), dtype=np.int64))
    score = np.concatenate([gscore, iscore])
    ok = ~(fte[np.concatenate([proto, fa])] | fte[np.concatenate([face_pos[edit], fb])])
    scores = pd.DataFrame({"pair_id": pairs["pair_id"].to_numpy(), "model": model,
                           "score": np.where(ok, score, np.nan), "status": np.where(ok, "ok", "fte")})
    return {"faces": faces, "pairs": pairs, "scores": scores, "status": status}


def write_sim_run(root, spec: SimSpec, rng: np.random.Generator, models: tuple[str, ...] = ("sim",),
                  n_boot: int = 200, target_fmr: tuple[float, ...] = (1e-2,), seed: int = 0, **analysis) -> Path:
    """A run directory (protocol.yaml, faces, pairs, scores, embeddings status) from simulated scores.

    Every model gets its own score draw on the same faces and pairs. ``spec.groups`` must be
    ``skin=<level>`` names matching the protocol's default levels (light, intermediate, dark).

    Parameters
    ----------
    root : str or Path
        The run directory to write (created if missing).
    spec : SimSpec
        Design and planted effects.
    rng : numpy.random.Generator
        Source of the random draws.
    models : tuple of str
        Model names; each gets its own scores and enrolment table.
    n_boot : int
        The protocol's ``analysis.n_boot``.
    target_fmr : tuple of float
        The protocol's ``analysis.target_fmr``.
    seed : int
        The protocol's seed (it seeds the analysis' bootstrap).
    **analysis
        Further ``analysis`` settings of the protocol.

    Returns
    -------
    Path
        The run directory, ready for :func:`faceaudit.stats.analyze_run`.

    Examples
    --------
    >>> import tempfile
    >>> from faceaudit.run import load_run
    >>> spec = SimSpec(n_seeds=6, groups=("skin=light", "skin=dark"), edits={"lighting": (1.0,)})
    >>> root = write_sim_run(tempfile.mkdtemp(), spec, np.random.default_rng(0), models=("a", "b"))
    >>> run = load_run(root)
    >>> run.models, run.protocol.n_seeds, len(run.faces)
    (['a', 'b'], 6, 24)
    """
    from pathlib import Path

    from faceaudit.protocol import Protocol
    from faceaudit.rundir import RunDir, write_table, write_text

    run = RunDir(root)
    run.root.mkdir(parents=True, exist_ok=True)
    proto = Protocol(name="simulated", seed=seed, n_seeds=spec.n_seeds, models=list(models),
                     edits=[{"attribute": a, "levels": list(lv)} for a, lv in spec.edits.items()],
                     analysis={"n_boot": n_boot, "target_fmr": list(target_fmr), **analysis})
    write_text(run.protocol, proto.to_yaml())
    first = None
    for m in models:
        tb = simulate_run_tables(spec, rng, model=m)
        if first is None:
            first = tb
            write_table(run.faces, tb["faces"])
            write_table(run.pairs, tb["pairs"])
        write_table(run.scores(m), tb["scores"])
        write_table(run.embeddings(m), tb["status"])
    return Path(run.root)


def example_model_data(n_seeds: int = 8, groups: tuple[str, ...] = ("skin=light", "skin=dark"), seed: int = 0,
                       **spec):
    """A small simulated model, index-encoded, for examples and quick experiments.

    The design has edit levels ``lighting`` -1 and +1, and the last group's genuine scores are
    planted 0.2 lower than the others' (unless ``spec`` says otherwise).

    Parameters
    ----------
    n_seeds : int
        Seeds (identities).
    groups : tuple of str
        Protected groups, the first is the reference in the examples.
    seed : int
        Seed of the score draws.
    **spec
        Further :class:`SimSpec` fields (they replace the defaults above).

    Returns
    -------
    faceaudit.stats.data.ModelData
        Model ``"sim"``, as :func:`faceaudit.stats.data.prepare_model` returns it.

    Examples
    --------
    >>> md = example_model_data(n_seeds=8)
    >>> md.layout.S, md.layout.groups, len(md.genuine), len(md.impostor)
    (8, ['skin=light', 'skin=dark'], 32, 168)
    """
    from faceaudit.stats.data import make_layout, prepare_model

    fields = {"edits": {"lighting": (-1.0, 1.0)}, "gen_shift": {groups[-1]: -0.2}, **spec}
    tb = simulate_run_tables(SimSpec(n_seeds=n_seeds, groups=tuple(groups), **fields), np.random.default_rng(seed))
    layout = make_layout(tb["faces"], list(groups))
    return prepare_model("sim", tb["pairs"], tb["scores"], tb["status"], tb["faces"], layout)
