"""SHA-256 of bytes, files and JSON-able objects: the one implementation every room uses.

Run-directory verification, weight-file checks and the card's provenance all hash files; a cached
file hash is keyed by path, size and modification time, so a file replaced in place is hashed anew.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from typing import Any

__all__ = ["sha256_bytes", "sha256_file", "sha256_file_cached", "sha256_json"]


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``.

    Parameters
    ----------
    data : bytes
        What to hash.

    Returns
    -------
    str
        64 lowercase hex digits.

    Examples
    --------
    >>> sha256_bytes(b"")[:16]
    'e3b0c44298fc1c14'
    """
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (no caching).

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    str
        64 lowercase hex digits.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
    >>> _ = p.write_bytes(b"abc")
    >>> sha256_file(p)[:16]
    'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@lru_cache(maxsize=256)
def _sha256_file_at(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def sha256_file_cached(path: str | os.PathLike) -> str:
    """:func:`sha256_file`, cached for large files read many times (weights, shipped data).

    The cache key is the path *and* the file's size and modification time, so a file that is
    replaced or rewritten is hashed again rather than answered from a stale entry.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    str
        64 lowercase hex digits.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.bin"
    >>> _ = p.write_bytes(b"abc"); first = sha256_file_cached(p)
    >>> _ = p.write_bytes(b"abcd"); first == sha256_file_cached(p)
    False
    """
    st = os.stat(path)
    return _sha256_file_at(os.fspath(path), st.st_size, st.st_mtime_ns)


def sha256_json(obj: Any) -> str:
    """SHA-256 of an object's canonical JSON (sorted keys; non-JSON values as ``str``).

    Parameters
    ----------
    obj : Any
        A JSON-able value (dicts, lists, numbers, strings; others are converted with ``str``).

    Returns
    -------
    str
        64 lowercase hex digits.

    Examples
    --------
    >>> sha256_json({"b": 1, "a": 2}) == sha256_json({"a": 2, "b": 1})
    True
    """
    return sha256_bytes(json.dumps(obj, sort_keys=True, default=str).encode())
