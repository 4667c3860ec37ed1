"""Optional IP-Adapter FaceID-style identity conditioning on the tiny Stable-Diffusion pipeline.

The adapter is a randomly initialised state dict in the layout diffusers' ``load_ip_adapter`` reads
for FaceID adapters (``image_proj``: ``proj.0``/``proj.2``/``norm``; ``ip_adapter``:
``<k>.to_k_ip.weight``/``<k>.to_v_ip.weight`` for the k-th cross-attention layer, k = 1, 3, 5, ...),
saved as a ``.bin`` file and loaded through diffusers, as a downloaded adapter would be. The prototype
is embedded by the real SFace recognizer (128-d, so the adapter takes 128-d embeddings).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from _tiny_diffusion import build_tiny_pipeline  # noqa: E402

from faceaudit.generate.base import Edit  # noqa: E402

EMBED_DIM = 128  # SFace
SEEDS = [0, 1]
SETTINGS = dict(device="cpu", resolution=32, num_inference_steps=2, guidance_scale=5.0, prompt="{skin} face, {edit}",
                neutral_phrase="frontal, neutral", edit_phrases={"yaw": {"+1": "turned right"}},
                batch_size=2)


def build_tiny_faceid_adapter(model_dir: Path, out: Path, seed: int = 1, gain: float = 3.0) -> Path:
    import torch
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(model_dir / "unet")
    cross = unet.config.cross_attention_dim
    g = torch.Generator().manual_seed(seed)
    mult, tokens = 2, 4  # diffusers' FaceID loader reads 4 image tokens

    def rand(*shape):
        return torch.randn(*shape, generator=g) * gain / shape[-1] ** 0.5

    image_proj = {"proj.0.weight": rand(EMBED_DIM * mult, EMBED_DIM), "proj.0.bias": torch.zeros(EMBED_DIM * mult),
                  "proj.2.weight": rand(cross * tokens, EMBED_DIM * mult), "proj.2.bias": torch.zeros(cross * tokens),
                  "norm.weight": torch.ones(cross), "norm.bias": torch.zeros(cross)}
    ip_adapter, key = {}, 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        hidden = unet.get_submodule(name[: -len(".processor")]).to_k.out_features
        ip_adapter[f"{key}.to_k_ip.weight"] = rand(hidden, cross)
        ip_adapter[f"{key}.to_v_ip.weight"] = rand(hidden, cross)
        key += 2
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"image_proj": image_proj, "ip_adapter": ip_adapter}, out)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-ipa")
    model = build_tiny_pipeline(root / "tiny-sd")
    return model, build_tiny_faceid_adapter(model, root / "adapter" / "ip-adapter-faceid-tiny.bin")


@pytest.fixture(scope="module")
def sface():
    from faceaudit.models.registry import check_model_spec, load_model

    problem = check_model_spec("sface")
    if problem:
        pytest.skip(problem)
    return load_model("sface", device="cpu")


def _gen(model, adapter, sface, scale=0.6, sharing=0.8):
    from faceaudit.generate.diffusion.generator import DiffusionGenerator

    spec = None if adapter is None else {"weights": str(adapter), "scale": scale, "embedder": "sface"}
    return DiffusionGenerator(model_id=str(model), identity_sharing=sharing, identity_adapter=spec,
                              adapter_embedder=sface, **SETTINGS)


def test_adapter_loads_through_diffusers_next_to_identity_sharing(tiny, sface):
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

    from faceaudit.generate.diffusion.identity_sharing import SharedSelfAttnProcessor

    gen = _gen(*tiny, sface)
    procs = gen.pipe.unet.attn_processors
    assert all(isinstance(p, SharedSelfAttnProcessor) for p in procs.values())
    cross = [p.original for n, p in procs.items() if n.endswith("attn2.processor")]
    assert cross and all(isinstance(p, IPAdapterAttnProcessor2_0) for p in cross)
    assert gen.adapter.embed_dim == EMBED_DIM and gen.metadata()["identity_adapter_embedder"] == "sface"


def test_adapter_render_is_deterministic_scale0_equals_plain_and_the_embedding_reaches_the_unet(tiny, sface):
    model, adapter = tiny
    plain = _gen(model, None, sface)
    gen = _gen(model, adapter, sface)
    off = _gen(model, adapter, sface, scale=0.0)
    edit = Edit("yaw", 1.0)

    # prototypes are rendered unconditioned: identical to the plain pipeline's, bit for bit
    proto = gen.render(SEEDS, "skin=dark").images
    assert np.array_equal(proto, plain.render(SEEDS, "skin=dark").images)

    # (a) deterministic
    a = gen.render(SEEDS, "skin=dark", edit).images
    assert np.array_equal(a, gen.render(SEEDS, "skin=dark", edit).images)
    # the edit is conditioned on its prototype's SFace embedding (zero where SFace finds no face)
    expected = gen.adapter.prototype_embeddings(proto)
    assert expected.shape == (len(SEEDS), EMBED_DIM)
    assert np.array_equal(a, gen.render(SEEDS, "skin=dark", edit, identity=expected).images)

    # (b) scale 0: the adapter's processors skip the image tokens -> the plain render, bit for bit
    base = plain.render(SEEDS, "skin=dark", edit).images
    assert np.array_equal(off.render(SEEDS, "skin=dark", edit).images, base)

    # (c) the embedding reaches the UNet: two different identities give different edits, and
    # each differs from the unconditioned render
    rng = np.random.default_rng(0)
    e1, e2 = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in rng.normal(size=(2, len(SEEDS), EMBED_DIM)))
    r1 = gen.render(SEEDS, "skin=dark", edit, identity=e1).images.astype(int)
    r2 = gen.render(SEEDS, "skin=dark", edit, identity=e2).images.astype(int)
    assert np.abs(r1 - r2).mean() > 1.0
    assert np.abs(r1 - base.astype(int)).mean() > 1.0
    # per image: changing only seed 1's embedding leaves seed 0's image as it was
    mixed = gen.render(SEEDS, "skin=dark", edit, identity=np.stack([e1[0], e2[1]])).images.astype(int)
    assert np.array_equal(mixed[0], r1[0]) and not np.array_equal(mixed[1], r1[1])


def _protocol(tmp_path: Path, model: Path, adapter: str) -> Path:
    doc = {"name": "ipa", "seed": 0, "n_seeds": 2,
           "generator": {"name": "diffusion", "model": str(model), "resolution": 32, "steps": 2, "guidance": 5.0,
                         "identity_sharing": 0.8, "batch_size": 2, "prompt": "{skin} face, {edit}",
                         "neutral_phrase": "frontal", "edit_phrases": {"smile": {"+1": "smile"}},
                         "identity_adapter": {"weights": adapter, "scale": 0.6, "embedder": "sface"}},
           "protected": {"attribute": "skin_tone", "reference": "light", "levels": [
               {"name": "light", "ita_min": 41, "ita_max": 90, "target": 50},
               {"name": "dark", "ita_min": -90, "ita_max": 41, "target": -20}]},
           "edits": [{"attribute": "smile", "levels": [1]}], "models": ["sface"], "device": "cpu"}
    path = tmp_path / "ipa.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_protocol_with_adapter_generates_and_a_missing_adapter_is_one_line_exit_2(tiny, tmp_path, sface):
    import os

    import pandas as pd

    model, adapter = tiny
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "faceaudit.cli", "generate"]
    missing = subprocess.run(cmd + [str(_protocol(tmp_path, model, str(tmp_path / "nope.bin"))), "--out", str(tmp_path / "r0")],
                             capture_output=True, text=True, env=env)
    assert missing.returncode == 2, missing.stderr
    lines = [ln for ln in missing.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "identity_adapter" in lines[0] and "nope.bin" in lines[0]

    ok = subprocess.run(cmd + [str(_protocol(tmp_path, model, str(adapter))), "--out", str(tmp_path / "r1")],
                        capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    faces = pd.read_parquet(tmp_path / "r1" / "faces.parquet")
    assert len(faces) == 2 * 2 * 2 and set(faces["edit_attr"]) == {"none", "smile"}
    assert faces.loc[faces["edit_attr"] == "smile", "prompt"].str.contains("smile").all()
