"""Model-card rendering: ``render_report(run_root)`` writes RUN/report.html and RUN/results/summary.md.

Modules: ``card`` (what the card says, as typed sections read from the run's tables; it computes
no statistic), ``evaluation`` (sections 3 and 5: faces, generation, manipulation check), ``human``
(section 7.6), ``tables`` (the formatted-table type and formatting), ``figures`` (plotly),
``images`` (counterfactual grids as data: URIs), ``fmt`` (number formatting), ``summary_md``,
``render`` (Jinja2 + atomic writes); templates in ``templates/``.
"""

from faceaudit.report.render import render_report

__all__ = ["render_report"]
