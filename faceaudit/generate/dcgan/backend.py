"""The DCGAN backend: the offline default, 64x64 faces placed and edited along learned directions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceaudit.core.errors import BadInput, FaceAuditError
from faceaudit.core.hashing import sha256_file
from faceaudit.generate.backend import GeneratorBackend, protected_dump

if TYPE_CHECKING:
    import pandas as pd

    from faceaudit.protocol import Protocol

#: faceaudit's shipped data folder (the directions files live there)
DATA_DIR = Path(__file__).resolve().parents[2] / "data"


class DCGANBackend(GeneratorBackend):
    """``generator.name: dcgan`` (docs/generator.md)."""

    name = "dcgan"
    description = "the offline default: 64x64 DCGAN with learned attribute directions"
    directions_note = "the directions file shipped with faceaudit"

    def readiness(self) -> dict[str, Any]:
        from faceaudit.generate.dcgan.generator import weights_path

        try:
            path = weights_path()
        except FaceAuditError as err:
            return {"ready": False, "detail": str(err)}
        if not Path(path).exists():
            return {"ready": False, "detail": f"weights file not found: {path}"}
        return {"ready": True, "detail": f"offline 64x64 DCGAN (weights {path})"}

    def design_inputs(self, protocol: "Protocol") -> dict[str, Any]:
        """The design part of the protocol and the directions file's content (a re-fit directions
        file must re-render); without ``generator.directions``, every shipped directions file."""
        g = protocol.generator
        if g.directions:
            path = Path(g.directions)
            if not path.is_file():
                raise BadInput(f"generator.directions: file not found: {path}")
            directions = {path.name: sha256_file(path)}
        else:
            directions = {f.name: sha256_file(f) for f in sorted(DATA_DIR.glob("directions*"))}
        return {
            "seed": protocol.seed,
            "n_seeds": protocol.n_seeds,
            "generator": g.model_dump(),
            "protected": protected_dump(protocol),
            "edits": [e.model_dump() for e in protocol.edits],
            "directions": directions,
        }

    def generate(self, protocol: "Protocol", run_root: str | Path, *, progress: bool = True,
                 keep_partial: bool = False, executor: Any = None) -> "pd.DataFrame":
        from faceaudit.generate.dcgan.design import generate_faces

        return generate_faces(protocol, run_root, progress=progress, keep_partial=keep_partial, executor=executor)

    def card_rows(self, protocol: "Protocol") -> list[tuple[str, str]]:
        g = protocol.generator
        return [("Latent truncation", f"{g.truncation:g} SD" if g.truncation else "off"),
                ("Skin search steps", str(g.max_skin_steps))]
