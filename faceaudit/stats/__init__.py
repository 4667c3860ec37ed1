"""Statistics of an audit: thresholds, error rates with seed-clustered bootstrap CIs, paired contrasts,
dose-response models and fairness summaries (docs/statistics.md). Entry point: ``analyze_run``."""

__all__ = ["analyze_run"]


def __getattr__(name: str):
    # Lazy: importing a light submodule (thresholds, fairness) must not pull in statsmodels.
    if name == "analyze_run":
        from faceaudit.stats.analyze import analyze_run

        return analyze_run
    raise AttributeError(name)
