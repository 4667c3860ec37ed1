"""Human rating web app: plan rating tasks over a run, serve them to raters, export the ratings.

What raters are asked (the rating scales) lives below this package, in
:mod:`faceaudit.rating_scales`, so :mod:`faceaudit.stats.human` can read them too. Rooms: ``plan``
(who rates what, in which order), ``store`` (SQLite in WAL mode, RUN/annotations.sqlite), ``app`` (the ASGI app), ``serve``
(uvicorn on loopback), ``export`` (parquet tables + statistics), ``simulate`` (raters drawn from a
known model). The statistics live in :mod:`faceaudit.stats.human`.
"""
