"""The rating scales: what raters are asked, one ordinal "same person?" scale for pairs and five
questions per image.

A top-level module below both the rating app (:mod:`faceaudit.annotate`) and the statistics of the
ratings (:mod:`faceaudit.stats.human`), so neither imports the other to learn the scales.

Values are stored as the integer codes below; labels are shown to raters and exported next to the
code. ``level`` is the Krippendorff level of measurement used for inter-rater agreement.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    key: str
    prompt: str
    options: tuple[tuple[int, str], ...]
    level: str  # nominal | ordinal | interval

    @property
    def codes(self) -> tuple[int, ...]:
        return tuple(c for c, _ in self.options)

    def label(self, code: int) -> str:
        return dict(self.options)[code]


SAME = Question("same", "Are these two photos of the same person?", (
    (1, "Definitely different people"), (2, "Probably different"), (3, "Cannot tell"),
    (4, "Probably the same person"), (5, "Definitely the same person")), "ordinal")

#: Monk Skin Tone scale (Monk 2019), swatch colours as published with the scale
MONK_COLOURS = ("#f6ede4", "#f3e7db", "#f7ead0", "#eadaba", "#d7bd96", "#a07e56", "#825c43", "#604134", "#3a312a", "#292420")

IMAGE_QUESTIONS: tuple[Question, ...] = (
    Question("gender", "Perceived gender presentation", ((1, "Feminine"), (2, "Androgynous / cannot tell"), (3, "Masculine")), "nominal"),
    Question("age", "Age group", ((1, "Under 18"), (2, "18–29"), (3, "30–44"), (4, "45–64"), (5, "65 or older")), "ordinal"),
    Question("skin", "Skin tone (Monk scale, 1 lightest – 10 darkest)", tuple((i, f"Monk {i}") for i in range(1, 11)), "ordinal"),
    Question("expression", "Expression", ((1, "Neutral"), (2, "Smiling"), (3, "Other")), "nominal"),
    Question("realism", "Could this be a photo of a real person?", (
        (1, "Clearly not"), (2, "Unlikely"), (3, "Cannot tell"), (4, "Probably"), (5, "Certainly")), "ordinal"),
)
QUESTIONS = {q.key: q for q in (SAME, *IMAGE_QUESTIONS)}
#: optional free text on every task; stored verbatim and only ever shown escaped
COMMENT = "comment"
COMMENT_MAX = 500


def rescale_same(code):
    """A "same person?" code 1..5 as a consensus score in [0, 1] (1 -> 0, 5 -> 1)."""
    return (code - 1) / (len(SAME.options) - 1)
