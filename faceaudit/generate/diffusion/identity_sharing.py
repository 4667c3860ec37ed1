"""Shared self-attention: a seed's edits attend to its prototype's keys and values.

The seed already fixes the initial latent of every image of the seed. That holds the coarse layout,
but a prompt change ("head turned to the right") still lets the UNet repaint the face: a different
person can come out. Shared self-attention (as in StyleAligned, Hertz et al. 2024, and ConsiStory,
Tewel et al. 2024) ties the edit to the prototype: while an edit is denoised, every UNet
self-attention layer sees, next to its own keys and values, the keys and values that the same layer
computed at the same step while the prototype was denoised. Appearance (skin, hair, facial
features) flows from the prototype into the edit; the edit's own prompt still acts through
cross-attention.

``identity_sharing = s`` in [0, 1] is the prior share of attention mass that goes to the prototype's
tokens: their logits get ``log(s)``, the edit's own get ``log(1 - s)``. ``s = 0`` is no sharing (the
processors are not even installed); ``s = 0.5`` weighs both sets of tokens alike; ``s = 1`` replaces
the edit's own self-attention context with the prototype's.

The prototype itself is rendered by the model's own processors (this module only *records* the keys
and values next to them), so it is bit-identical to an unshared render.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F


class SharedAttentionState:
    """The keys/values one prototype render recorded, per layer, in call order.

    Each layer is called once per denoising step, so the k-th call of a layer in an edit render
    reads the k-th record of that layer in the prototype render (the same step).
    """

    def __init__(self, strength: float):
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"identity_sharing must be in [0, 1], got {strength}")
        self.strength = float(strength)
        self.mode = "off"  # off | record | share
        self.records: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.cursor: dict[str, int] = {}

    def start_recording(self) -> None:
        self.mode = "record"
        self.records = {}
        self.cursor = {}

    def start_sharing(self) -> None:
        if not self.records:
            raise RuntimeError("identity sharing: no prototype was recorded")
        self.mode = "share"
        self.cursor = {}

    def stop(self) -> None:
        self.mode = "off"

    def clear(self) -> None:
        self.mode = "off"
        self.records = {}
        self.cursor = {}

    def nbytes(self) -> int:
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for recs in self.records.values() for k, v in recs)


def _is_plain_self_attention(attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None) -> bool:
    # The UNet transformer blocks' attn1: tokens in, no encoder states, no extra norms inside.
    return (
        encoder_hidden_states is None
        and not getattr(attn, "is_cross_attention", False)
        and hidden_states.ndim == 3
        and getattr(attn, "group_norm", None) is None
        and getattr(attn, "spatial_norm", None) is None
    )


class SharedSelfAttnProcessor:
    """Wraps a layer's original processor; records (prototype) or extends (edit) its keys/values."""

    def __init__(self, name: str, original: Any, state: SharedAttentionState):
        self.name = name
        self.original = original
        self.state = state

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        state = self.state
        if state.mode == "off" or not _is_plain_self_attention(attn, hidden_states, encoder_hidden_states):
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        if state.mode == "record":
            # the output is the original processor's, untouched: the prototype stays bit-identical
            out = self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
            with torch.no_grad():
                state.records.setdefault(self.name, []).append((attn.to_k(hidden_states), attn.to_v(hidden_states)))
            return out
        step = state.cursor.get(self.name, 0)
        state.cursor[self.name] = step + 1
        records = state.records.get(self.name, [])
        if step >= len(records):
            raise RuntimeError(f"identity sharing: layer {self.name} called more often than in the prototype render")
        proto_k, proto_v = records[step]
        return self._shared(attn, hidden_states, attention_mask, proto_k, proto_v)

    def _shared(self, attn, hidden_states, attention_mask, proto_k, proto_v):
        batch, n_tokens, _ = hidden_states.shape
        if batch % proto_k.shape[0]:
            raise RuntimeError(f"identity sharing: edit batch {batch} is not a multiple of the prototype batch {proto_k.shape[0]}")
        if batch != proto_k.shape[0]:
            # prototype batch [uncond, cond] (or [x]) -> each half repeated over the edit's images
            reps = batch // proto_k.shape[0]
            proto_k = proto_k.repeat_interleave(reps, dim=0)
            proto_v = proto_v.repeat_interleave(reps, dim=0)
        query = attn.to_q(hidden_states)
        key = torch.cat([attn.to_k(hidden_states), proto_k.to(query.dtype)], dim=1)
        value = torch.cat([attn.to_v(hidden_states), proto_v.to(query.dtype)], dim=1)
        heads = attn.heads
        head_dim = key.shape[-1] // heads
        query = query.view(batch, -1, heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, heads, head_dim).transpose(1, 2)
        if getattr(attn, "norm_q", None) is not None:
            query = attn.norm_q(query)
        if getattr(attn, "norm_k", None) is not None:
            key = attn.norm_k(key)
        s = self.state.strength
        own_bias = math.log(1.0 - s) if s < 1.0 else float("-inf")
        bias = torch.empty(key.shape[2], dtype=query.dtype, device=query.device)
        bias[:n_tokens] = own_bias
        bias[n_tokens:] = math.log(s)
        if attention_mask is not None:
            raise RuntimeError("identity sharing: self-attention masks are not supported")
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=bias.view(1, 1, 1, -1), dropout_p=0.0,
                                             scale=getattr(attn, "scale", None))
        out = out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if getattr(attn, "residual_connection", False):
            out = out + hidden_states
        return out / getattr(attn, "rescale_output_factor", 1.0)


def install(unet, strength: float) -> SharedAttentionState:
    """Wrap every attention processor of ``unet``; returns the state that switches them."""
    state = SharedAttentionState(strength)
    originals = unet.attn_processors
    unet.set_attn_processor({name: SharedSelfAttnProcessor(name, proc, state) for name, proc in originals.items()})
    return state
