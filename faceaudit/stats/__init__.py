"""Statistics of an audit: thresholds, error rates with seed-clustered bootstrap CIs, paired contrasts,
dose-response models and fairness summaries (docs/statistics.md). Entry point: ``analyze_run``."""

from faceaudit.stats.analyze import analyze_run

__all__ = ["analyze_run"]
