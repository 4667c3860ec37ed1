"""InsightFace ArcFace (``buffalo_l`` pack: ``w600k_r50.onnx``, ResNet-50 trained on WebFace600K).

Loading follows InsightFace's own layout: the pack lives in
``$INSIGHTFACE_HOME/models/buffalo_l/`` (default ``~/.insightface``); when the ONNX file is not
there, the pack's zip is downloaded from InsightFace's GitHub release and unpacked. Offline, this
fails with one line naming the model, the URL and where to put the file. The network runs with
onnxruntime through :class:`~faceaudit.models.onnx.OnnxRecognizer` (RGB, (x - 127.5) / 127.5,
ArcFace 112x112 alignment) -- InsightFace's own preprocessing for its recognition models.

The weights are released for non-commercial research use only (InsightFace model zoo licence).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

from faceaudit.errors import ModelUnavailable
from faceaudit.models.detect import FaceDetector
from faceaudit.models.onnx import OnnxRecognizer
from faceaudit.models.runtime import download

PACK = "buffalo_l"
MODEL_FILE = "w600k_r50.onnx"
PACK_URL = "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip"


def insightface_home() -> Path:
    return Path(os.path.expanduser(os.getenv("INSIGHTFACE_HOME", "~/.insightface")))


def ensure_pack_file(root: str | os.PathLike | None = None, url: str = PACK_URL) -> Path:
    """Path of ``w600k_r50.onnx``, downloading and unpacking the pack when it is missing."""
    pack_dir = Path(root or insightface_home()) / "models" / PACK
    target = pack_dir / MODEL_FILE
    if target.is_file():
        return target
    archive = download(url, pack_dir.parent / f"{PACK}.zip", f"insightface {PACK}/{MODEL_FILE}")
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if m.endswith(".onnx")]
            pack_dir.mkdir(parents=True, exist_ok=True)
            for member in members:
                # Older packs nest the files in a folder named after the pack; flatten either way.
                dest = pack_dir / Path(member).name
                with zf.open(member) as src, open(dest, "wb") as out:
                    out.write(src.read())
    except zipfile.BadZipFile as err:
        raise ModelUnavailable(f"insightface: {archive} from {url} is not a valid zip ({err})") from None
    finally:
        archive.unlink(missing_ok=True)
    if not target.is_file():
        raise ModelUnavailable(f"insightface: {url} did not contain {MODEL_FILE}")
    return target


class InsightFaceRecognizer(OnnxRecognizer):
    batch_size = 32

    def __init__(
        self,
        device: str = "auto",
        root: str | os.PathLike | None = None,
        url: str = PACK_URL,
        detector: FaceDetector | None = None,
    ):
        path = ensure_pack_file(root, url)
        super().__init__(path, device=device, name="insightface", mean=127.5, std=127.5, channel_order="RGB", detector=detector)
        self.version = f"{PACK}-{self.version}"

    def metadata(self) -> dict[str, Any]:
        return {
            **super().metadata(),
            "architecture": "ArcFace ResNet-50 (IResNet50), 512-d",
            "training_data": "WebFace600K (InsightFace buffalo_l pack)",
            "license": "InsightFace model zoo: non-commercial research use only",
            "source": PACK_URL,
        }
