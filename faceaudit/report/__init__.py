"""Model-card rendering: ``render_report(run_root)`` writes RUN/report.html and RUN/results/summary.md.

Modules: ``card`` (what the card says, computed from the run's tables), ``figures`` (plotly),
``images`` (counterfactual grids as data: URIs), ``fmt`` (number formatting), ``summary_md``,
``render`` (Jinja2 + atomic writes); templates in ``templates/``.
"""

from faceaudit.report.render import render_report

__all__ = ["render_report"]
