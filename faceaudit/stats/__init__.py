"""Statistics of an audit: thresholds, error rates with seed-clustered bootstrap CIs, paired contrasts,
dose-response models, fairness summaries and comparisons of two runs (docs/statistics.md). Every
number with a CI that faceaudit reports is computed here; the model card only reads the tables.
Entry point: ``analyze_run``; runs are read through :mod:`faceaudit.run`. A user's own comparison
scores, in memory: ``ErrorRates`` (:mod:`faceaudit.stats.score_rates`)."""

__all__ = ["analyze_run", "ErrorRates"]


def __getattr__(name: str):
    # Lazy: importing a light submodule (thresholds, fairness) must not pull in statsmodels.
    if name == "analyze_run":
        from faceaudit.stats.analyze import analyze_run

        return analyze_run
    if name == "ErrorRates":
        from faceaudit.stats.score_rates import ErrorRates

        return ErrorRates
    raise AttributeError(name)
