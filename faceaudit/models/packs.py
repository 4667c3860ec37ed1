"""InsightFace model packs (ArcFace-class recognizers) in faceaudit's models directory.

A pack is InsightFace's release zip (``buffalo_l``, ``antelopev2``, ...): a detector, landmark and
attribute networks and one *recognition* ONNX. faceaudit uses only the recognition network.

Where packs are looked up, in order (an audit never downloads one):

1. ``$FACEAUDIT_MODELS/<pack>/`` (default ``~/.cache/faceaudit/models``), where
   ``faceaudit models fetch <pack>`` puts them;
2. ``$INSIGHTFACE_HOME/models/<pack>/`` (default ``~/.insightface``), where the insightface package
   itself keeps them, so an existing install is reused.

``fetch_pack`` downloads the zip, checks its sha256 against the table below (or one the user gives),
and unpacks the ``.onnx`` files into a temporary folder that is renamed into place only when
complete, so an interrupted fetch never leaves a half pack that looks usable.

The archive checksums come from public manifests of projects that pin these release files; they
could not be re-checked from this project's build machine (no access to GitHub). A pack with no
known checksum is fetched only with ``--sha256``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from faceaudit.core.errors import BadInput, ModelUnavailable

MODELS_ENV = "FACEAUDIT_MODELS"
RELEASE = "https://github.com/deepinsight/insightface/releases/download/v0.7"
LICENSE = "InsightFace model zoo: non-commercial research use only"


@dataclass(frozen=True)
class Pack:
    name: str
    recognition: str  # the recognition ONNX inside the pack
    architecture: str
    training_data: str
    sha256: Optional[str]  # of the release zip

    @property
    def url(self) -> str:
        return f"{RELEASE}/{self.name}.zip"


PACKS: dict[str, Pack] = {
    p.name: p
    for p in [
        Pack("buffalo_l", "w600k_r50.onnx", "ArcFace IResNet-50, 512-d", "WebFace600K",
             "80ffe37d8a5940d59a7384c201a2a38d4741f2f3c51eef46ebb28218a7b0ca2f"),
        Pack("buffalo_m", "w600k_r50.onnx", "ArcFace IResNet-50, 512-d", "WebFace600K",
             "d98264bd8f2dc75cbc2ddce2a14e636e02bb857b3051c234b737bf3b614edca9"),
        Pack("buffalo_s", "w600k_mbf.onnx", "ArcFace MobileFaceNet, 512-d", "WebFace600K",
             "d85a87f503f691807cd8bb97128bdf7a0660326cd9cd02657127fa978bab8b5e"),
        Pack("buffalo_sc", "w600k_mbf.onnx", "ArcFace MobileFaceNet, 512-d", "WebFace600K", None),
        Pack("antelopev2", "glintr100.onnx", "ArcFace IResNet-100, 512-d", "Glint360K",
             "8e182f14fc6e80b3bfa375b33eb6cff7ee05d8ef7633e738d1c89021dcf0c5c5"),
    ]
}
DEFAULT_PACK = "buffalo_l"


def models_dir() -> Path:
    return Path(os.path.expanduser(os.getenv(MODELS_ENV, "~/.cache/faceaudit/models")))


def insightface_home() -> Path:
    return Path(os.path.expanduser(os.getenv("INSIGHTFACE_HOME", "~/.insightface")))


def get_pack(name: str) -> Pack:
    if name not in PACKS:
        raise BadInput(f"insightface: unknown pack {name!r} (known: {', '.join(PACKS)})")
    return PACKS[name]


def search_dirs(name: str) -> list[Path]:
    return [models_dir() / name, insightface_home() / "models" / name]


def find_recognition_onnx(name: str, root: str | os.PathLike | None = None) -> Optional[Path]:
    """The pack's recognition ONNX if it is on disk (``root/models/<pack>`` when ``root`` is given)."""
    pack = get_pack(name)
    dirs = [Path(root) / "models" / name] if root is not None else search_dirs(name)
    for d in dirs:
        if (d / pack.recognition).is_file():
            return d / pack.recognition
    return None


def require_recognition_onnx(name: str, root: str | os.PathLike | None = None, url: Optional[str] = None) -> Path:
    """Like :func:`find_recognition_onnx`, but a missing pack is a one-line ModelUnavailable (exit 2)."""
    found = find_recognition_onnx(name, root)
    if found is not None:
        return found
    pack = get_pack(name)
    where = Path(root) / "models" / name if root is not None else models_dir() / name
    raise ModelUnavailable(
        f"insightface {name}: {pack.recognition} not found in {where}; audits never download: run "
        f"`faceaudit models fetch {name}` (downloads {url or pack.url}) or unpack that zip into {where}"
    )


def fetch_pack(name: str, dest_root: str | os.PathLike | None = None, sha256: Optional[str] = None,
               url: Optional[str] = None, timeout: float = 60.0) -> Path:
    """Download, verify and unpack a pack into ``dest_root/<pack>`` (default the models dir).

    Returns the recognition ONNX's path. The expected checksum is ``sha256`` if given, else the
    table's; a pack with neither is refused.
    """
    from faceaudit.core.hashing import sha256_file
    from faceaudit.models.runtime import download

    pack = get_pack(name)
    expected = (sha256 or pack.sha256 or "").lower()
    if not expected:
        raise BadInput(f"insightface {name}: no known checksum for {pack.url}; pass --sha256 HEX")
    root = Path(dest_root) if dest_root is not None else models_dir()
    target = root / name
    if (target / pack.recognition).is_file():
        return target / pack.recognition
    root.mkdir(parents=True, exist_ok=True)
    src = url or pack.url
    try:
        archive = download(src, root / f".{name}.zip", f"insightface {name}", timeout=timeout)
    except ModelUnavailable as err:
        reason = str(err).split("; download it by hand")[0]
        raise ModelUnavailable(f"{reason}; download it by hand and unpack its .onnx files into {target}") from None
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        got = sha256_file(archive)  # uncached: the file is new
        if got != expected:
            raise ModelUnavailable(f"insightface {name}: checksum mismatch for {src}: sha256 {got}, expected {expected}")
        try:
            with zipfile.ZipFile(archive) as zf:
                members = [m for m in zf.namelist() if m.endswith(".onnx")]
                for member in members:
                    # Packs nest their files in a folder named after the pack, or not; flatten.
                    with zf.open(member) as fin, open(staging / Path(member).name, "wb") as fout:
                        shutil.copyfileobj(fin, fout, 1 << 20)
        except zipfile.BadZipFile as err:
            raise ModelUnavailable(f"insightface {name}: {src} is not a valid zip ({err})") from None
        if not (staging / pack.recognition).is_file():
            raise ModelUnavailable(f"insightface {name}: {src} does not contain {pack.recognition}")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        archive.unlink(missing_ok=True)
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target / pack.recognition
