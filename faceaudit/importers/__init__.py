"""Datasets in: faces tables (and images) from existing data instead of the generator.

One module per importer, each with ``read_<name>(source) -> Imported``; :func:`write_run` turns an
:class:`Imported` into a run directory the rest of the audit (embed, score, analyze, report) runs on
unchanged. ``faceaudit import causalface|folder SOURCE --out RUN`` (cli -> api.import_dataset).
``scores`` reads a table of comparison scores instead of images (``read_scores`` ->
:class:`faceaudit.importers.scores.ImportedScores`, written by ``write_scores_run``; cli -> api.import_scores).
"""

from faceaudit.importers.base import Imported, write_run

IMPORTERS = ("causalface", "folder", "scores")


def read_dataset(importer: str, source, **options):
    """The dataset read by ``importer``: an :class:`Imported` (faces with images), or for ``scores`` an
    :class:`faceaudit.importers.scores.ImportedScores` (comparisons, no images)."""
    if importer == "causalface":
        from faceaudit.importers.causalface import read_causalface

        return read_causalface(source, **options)
    if importer == "folder":
        from faceaudit.importers.folder import read_folder

        return read_folder(source, **options)
    if importer == "scores":
        from faceaudit.importers.scores import read_scores

        return read_scores(source, **options)
    from faceaudit.core.errors import BadInput

    raise BadInput(f"import: unknown importer {importer!r} (known: {', '.join(IMPORTERS)})")


__all__ = ["IMPORTERS", "Imported", "read_dataset", "write_run"]
