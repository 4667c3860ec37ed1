"""A tiny, randomly initialised Stable-Diffusion-style pipeline, built here from configs in code.

Same component classes as Stable Diffusion 1.x (CLIP text encoder + CLIP BPE tokenizer, a
cross-attention UNet, a KL autoencoder, DDIM), shrunk so that a 32-64 px render in 2 steps takes
a fraction of a second. The tokenizer's vocabulary and merges are built in memory (every byte of the
byte-level alphabet plus a few merges), so nothing is downloaded. ``build_tiny_pipeline(dir)``
saves it in the diffusers layout; faceaudit then loads it from that directory, offline, like any
real model directory.
"""

from __future__ import annotations

import json
from pathlib import Path

#: a few BPE merges, so the tokenizer is a real BPE model and not only a byte alphabet
MERGES = ["f a", "fa c", "fac e</w>", "p e", "pe r", "o n</w>", "l i", "li g", "h t</w>"]


def _byte_alphabet() -> list[str]:
    # GPT-2 / CLIP byte-level alphabet: printable bytes map to themselves, the others to U+0100...
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    extra = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(extra))]


def tiny_vocab() -> dict[str, int]:
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in _byte_alphabet():
        vocab[ch] = len(vocab)
    for ch in _byte_alphabet():
        vocab[ch + "</w>"] = len(vocab)
    for merge in MERGES:
        vocab.setdefault(merge.replace(" ", ""), len(vocab))
    return vocab


def build_tiny_pipeline(out_dir: str | Path, seed: int = 0, qk_gain: float = 4.0, vo_gain: float = 2.0) -> Path:
    """Build, randomly initialise (``torch.manual_seed(seed)``) and save the pipeline to ``out_dir``.

    At PyTorch's default init the UNet's attention logits are tiny, so every query attends to all
    tokens alike and self-attention returns the mean token, whatever it is shown. The query/key
    weights are drawn ``qk_gain`` times wider (attention picks tokens, as in a trained model) and the
    value/output weights ``vo_gain`` times wider (what attention passes on is not negligible next
    to the residual stream)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=8, attention_head_dim=8,
    )
    with torch.no_grad():
        for name, module in unet.named_modules():
            if name.endswith(("attn1", "attn2")):
                module.to_q.weight.mul_(qk_gain)
                module.to_k.weight.mul_(qk_gain)
                module.to_v.weight.mul_(vo_gain)
                module.to_out[0].weight.mul_(vo_gain)
    vae = AutoencoderKL(
        block_out_channels=[16, 32], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8, sample_size=64,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
    )
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    vocab = tiny_vocab()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, vocab_size=len(vocab), max_position_embeddings=77,
    ))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[tuple(m.split(" ")) for m in MERGES], model_max_length=77)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(out_dir)
    return out_dir


def break_tokenizer(model_dir: str | Path) -> None:
    """Overwrite the saved tokenizer with an empty vocabulary (what a failed offline fetch leaves)."""
    tok_dir = Path(model_dir) / "tokenizer"
    tok_json = tok_dir / "tokenizer.json"
    data = json.loads(tok_json.read_text())
    data["model"]["vocab"] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    data["model"]["merges"] = []
    tok_json.write_text(json.dumps(data))
