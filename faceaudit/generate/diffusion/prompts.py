"""Prompt slots: how a protected level and a nuisance edit become words for a text-to-image model.

A prompt template names one slot per protected attribute (``{skin}``, or ``{race}`` and
``{gender}``) and one slot ``{edit}``. Each protected level fills its attribute's slot with a phrase;
the prototype fills ``{edit}`` with the neutral phrase, an edit with the phrase for its attribute
and signed level. The default template and slot phrases are schema defaults
(:mod:`faceaudit.protocol`), the edit phrases are below; a protocol overrides any of them (``generator.slots``,
``generator.edit_phrases``). Phrases are requests, not measurements: the generate stage measures
every image, and the manipulation check reports what the pixels show.
"""

from __future__ import annotations

import string
from typing import Mapping

from faceaudit.core.errors import BadInput
from faceaudit.generate.base import Edit
from faceaudit.protocol import DEFAULT_SLOTS
from faceaudit.protocol import DEFAULT_NEGATIVE_PROMPT as DEFAULT_NEGATIVE
from faceaudit.protocol import DEFAULT_NEUTRAL_PHRASE as NEUTRAL_PHRASE
from faceaudit.protocol import DEFAULT_PROMPT_TEMPLATE as DEFAULT_TEMPLATE

__all__ = ["DEFAULT_NEGATIVE", "DEFAULT_SLOTS", "DEFAULT_TEMPLATE", "NEUTRAL_PHRASE", "PromptBuilder", "default_edit_phrase",
           "level_key", "parse_group", "template_slots"]


def default_edit_phrase(attribute: str, level: float) -> str:
    """Phrase for a signed edit level; ``|level| >= 2`` asks for a stronger change."""
    strong = abs(level) >= 2
    side = "right" if level > 0 else "left"
    if attribute == "lighting":
        return f"{'strong ' if strong else ''}light from the {side} side, the other side of the face in shadow"
    if attribute == "yaw":
        return f"head turned {'strongly ' if strong else 'slightly '}to the {side}"
    if attribute == "smile":
        if level > 0:
            return "a broad toothy smile" if strong else "a slight smile"
        return "a frowning expression" if strong else "a serious expression"
    if attribute == "age":
        # apparent age, checked by both age classifiers (faceres, SSR-Net) in the manipulation check
        if level > 0:
            return "elderly, with deep wrinkles and grey hair" if strong else "middle-aged, with fine wrinkles"
        return "in their late teens, youthful skin" if strong else "young-looking, in their twenties"
    if attribute == "glasses" and level > 0:
        # nothing in faceaudit measures glasses: the manipulation check reports what this changes elsewhere
        return "wearing thick-rimmed glasses" if strong else "wearing glasses"
    raise BadInput(f"generator.edit_phrases: no phrase for edit attribute {attribute!r} at level {level:+g}; add one")


def level_key(level: float) -> str:
    """How an edit level is spelled in ``edit_phrases``: ``+1``, ``-2``, ``+0.5``."""
    return f"{float(level):+g}"


def template_slots(template: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(template) if field]


def parse_group(group: str | None) -> dict[str, str]:
    """``skin=dark|gender=female`` -> ``{"skin": "dark", "gender": "female"}``."""
    if not group or group == "none":
        return {}
    out = {}
    for part in group.split("|"):
        key, sep, value = part.partition("=")
        if not sep or not key or not value:
            raise BadInput(f"group {group!r}: expected attr=level joined by '|'")
        out[key] = value
    return out


class PromptBuilder:
    def __init__(self, template: str = DEFAULT_TEMPLATE, slots: Mapping[str, Mapping[str, str]] | None = None,
                 edit_phrases: Mapping[str, Mapping[str, str]] | None = None, neutral: str = NEUTRAL_PHRASE,
                 negative: str = DEFAULT_NEGATIVE):
        self.template = template
        self.slots = {k: dict(v) for k, v in (slots if slots is not None else DEFAULT_SLOTS).items()}
        self.edit_phrases = {k: dict(v) for k, v in (edit_phrases or {}).items()}
        self.neutral = neutral
        self.negative = negative
        names = template_slots(template)
        if "edit" not in names:
            raise BadInput(f"generator.prompt: the template has no {{edit}} slot: {template!r}")
        self.protected_slots = [n for n in names if n != "edit"]

    def edit_phrase(self, edit: Edit | None) -> str:
        edit = edit or Edit()
        if edit.attribute == "none" or edit.level == 0:
            return self.neutral
        table = self.edit_phrases.get(edit.attribute, {})
        return table.get(level_key(edit.level)) or default_edit_phrase(edit.attribute, edit.level)

    def prompt(self, group: str | None, edit: Edit | None = None) -> str:
        levels = parse_group(group)
        fill = {"edit": self.edit_phrase(edit)}
        for slot in self.protected_slots:
            if group is None:  # the unplaced random face of a seed: no protected phrase
                fill[slot] = "a"
                continue
            if slot not in levels:
                raise BadInput(f"generator.prompt: slot {{{slot}}} but group {group!r} has no {slot}=<level>")
            phrases = self.slots.get(slot, {})
            if levels[slot] not in phrases:
                raise BadInput(f"generator.slots.{slot}: no phrase for level {levels[slot]!r} (have {sorted(phrases)})")
            fill[slot] = phrases[levels[slot]]
        return self.template.format(**fill)

    def check(self, groups: list[str], edits: list[Edit]) -> None:
        """Build every prompt once, so a missing phrase fails before anything is rendered."""
        for g in groups:
            for e in [Edit()] + list(edits):
                self.prompt(g, e)
