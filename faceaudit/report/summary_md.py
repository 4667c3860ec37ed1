"""results/summary.md: the card's key numbers as compact Markdown, for PR comments and CI logs."""

from __future__ import annotations

import html
import re
from pathlib import PurePath

from faceaudit.report import fmt

#: contrasts listed in the summary (the most significant ones)
N_WORST = 5


_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}()#+!|~])")


def _md_name(s: object) -> str:
    """A user-chosen name (protocol, model, group, level) as inert Markdown text: summary.md is pasted
    into PR comments, where raw HTML and Markdown links in a name would render."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(" ".join(str(s).split()), quote=False))


def _md_escape(s: str) -> str:
    # Table cells: numbers and CIs keep their brackets readable; HTML, pipes and link syntax are defused.
    return html.escape(str(s), quote=False).replace("|", "\\|").replace("](", "]\\(")


def _md_table(columns: list[str], rows: list[list[str]], right: list[bool]) -> list[str]:
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---:" if r else ":---" for r in right) + "|"]
    out += ["| " + " | ".join(_md_escape(c).replace("\n", " · ") for c in row) + " |" for row in rows]
    return out


def gate_line(gate: dict) -> str:
    """The gate verdict of ``results/gate.json`` as one Markdown paragraph: the policy, its file's name
    (gate.json keeps the full path; a summary is shared beyond the machine that made it), the verdict
    and its counts, or why the policy could not be evaluated.

    Parameters
    ----------
    gate : dict
        ``results/gate.json`` (:func:`faceaudit.report.headline.gate_record`).

    Returns
    -------
    str

    Examples
    --------
    >>> print(gate_line({"policy": "default", "policy_file": "/x/protocols/policies/default.yaml", "status": "fail",
    ...                  "counts": {"pass": 7, "fail": 1, "inconclusive": 4}, "error": None}))
    **Gate:** policy default (file default.yaml): FAIL, 7 passed, 1 failed, 4 inconclusive of 12 checks (results/gate.json). The bounds are this policy's, not a standard; `faceaudit gate` exits 1 on a failed bound, 3 when inconclusive.
    """
    name = _md_name(gate.get("policy") or "policy")
    where = f" (file {_md_escape(PurePath(gate['policy_file']).name)})" if gate.get("policy_file") else ""
    if gate.get("error"):
        return f"**Gate:** policy {name}{where} could not be evaluated on this run: {_md_escape(gate['error'])}."
    c = gate.get("counts") or {}
    n = sum(int(c.get(k, 0)) for k in ("pass", "fail", "inconclusive"))
    return (f"**Gate:** policy {name}{where}: {str(gate.get('status', '?')).upper()}, {c.get('pass', 0)} passed, "
            f"{c.get('fail', 0)} failed, {c.get('inconclusive', 0)} inconclusive of {n} checks (results/gate.json). "
            "The bounds are this policy's, not a standard; `faceaudit gate` exits 1 on a failed bound, 3 when inconclusive.")


def summary_markdown(card) -> str:
    """results/summary.md of a model card (:class:`faceaudit.report.card.Card`), from its values alone."""
    head, ev, res = card.header, card.evaluation, card.results
    proto = head.protocol
    gen = ev.generation
    has_cells = any("|" in g for g in proto.group_names)  # crossed protected attributes
    lines = [
        f"## faceaudit: {_md_name(proto.name)}",
        "",
        f"{gen['seeds_kept']} synthetic identities (of {gen['seeds_requested']}) × {'cells' if has_cells else 'skin levels'} "
        f"{', '.join(map(_md_name, head.groups))} (reference {_md_name(head.reference_group)}); "
        f"edits {', '.join(map(_md_name, head.attrs))}; {ev.resolution_text} faces. "
        f"Global threshold per model at FMR {fmt.pct(head.primary_target)} on pooled impostors; "
        f"{proto.analysis.ci_level:.0%} CIs: {_md_escape(head.ci_method)}.",
        "",
    ]
    scores_import = proto.dataset is not None and proto.dataset.importer == "scores"
    if scores_import:  # no synthetic faces, no images: say what the numbers are instead
        lines[2] = (f"Observational audit of comparison scores imported from {_md_escape(proto.dataset.source)} "
                    f"({gen['seeds_kept']} identities; groups {', '.join(map(_md_name, head.groups))}, reference "
                    f"{_md_name(head.reference_group)}): the conclusions are correlational, not causal. "
                    f"Global threshold per model at FMR {fmt.pct(head.primary_target)} on pooled impostors; "
                    f"{proto.analysis.ci_level:.0%} CIs: {_md_escape(head.ci_method)}.")
    hl = card.headline
    if hl is not None:
        lines += [("Significant primary contrasts: " + hl.family["text"] + "." if hl.family
                   else "Significant primary contrasts: not computed (summary.json has no primary_family)."), ""]
    if card.gate is not None:
        lines += [gate_line(card.gate), ""]
    for m in res.model_summaries:
        if m.enrolled_nothing:
            lines += [f"### {_md_name(m.name)}", "",
                      f"{_md_name(m.name)} enrolled no face (FTE {fmt.pct(m.max_fte)}): no threshold, error rate or "
                      "contrast exists for it.", ""]
            continue
        lines.append(f"### {_md_name(m.name)} (threshold {fmt.num(m.threshold, 4)})")
        lines.append("")
        ut = res.unitary_table
        idx_model = ut.columns.index("model")
        keep = [i for i, c in enumerate(ut.columns) if c != "model"]
        rows = [[r[i] for i in keep] for r in ut.rows if r[idx_model] == m.name]
        lines += _md_table([ut.columns[i] for i in keep], rows, [ut.numeric[i] for i in keep])
        summary = f"FNMR worst/best: {_md_name(m.worst_fnmr.get('group', '–'))} {m.worst_fnmr.get('value', '–')} vs " \
                  f"{_md_name(m.best_fnmr.get('group', '–'))} {m.best_fnmr.get('value', '–')}" \
                  + (f" ({m.fnmr_ratio:.2f}×)" if m.fnmr_ratio else "")
        mh = next((h for h in hl.models if h.name == m.name), None) if hl is not None else None
        if mh is not None and mh.n_significant is not None and hl.family:
            summary += f"; {mh.n_significant} of the {hl.family['size']} primary contrasts significant ({_md_escape(hl.family['method'])})"
        lines += ["", summary + ".", ""]
        gap = next((g for g in (card.real.models if card.real is not None else []) if g.name == m.name), None)
        if gap is not None:  # synthetic versus real at the deployed threshold (faceaudit.report.real_gap)
            lines += [_md_escape(gap.sentence), ""]
    ct = res.contrasts_table
    if ct is not None and ct.rows:
        lines += ["### Most significant contrasts", ""]
        lines += _md_table(ct.columns[:6], [r[:6] for r in ct.rows[:N_WORST]], ct.numeric[:6])
        lines.append("")
    else:
        lines += ["Contrasts: not computed.", ""]
    gc = card.gender_caveats
    if gc is not None:
        lines += ["### Perceived gender", ""]
        lines += [f"- {_md_escape(b)}" for b in gc.brief]
        lines += ["- Perceived presentation as a classifier scores a synthetic face, not anyone's gender.", ""]
    caveats = [f"{ev.resolution_text} GAN faces (synthetic-to-real gap)", "ITA confounded by lighting"]
    if hl is not None and hl.discussion:
        caveats.append(_md_escape(hl.discussion[0].rstrip(".")) + ", the opposite of NIST FRVT Part 3 (2019) on photographs")
    if hl is not None:
        caveats += list(dict.fromkeys(_md_escape(o) for h in hl.models for o in h.omitted))
    if res.smallest_cell:
        caveats.append(f"smallest cell {res.smallest_cell['n']} genuine pairs")
    flags = ev.manipulation_flags
    if flags["leaky"]:
        caveats.append("leakage flagged: " + "; ".join(map(_md_escape, flags["leaky"])))
    if ev.manipulation_table is None and not scores_import:
        caveats.append("no manipulation check")
    if scores_import:
        caveats[:2] = ["observational scores (each group is different people, photographed differently)"]
    lines += ["**Caveats:** " + "; ".join(caveats) + ". Full model card: `report.html`.", ""]
    return "\n".join(lines)
