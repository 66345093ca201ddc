"""Rotary position embeddings applied to head-space vectors, the way LLaMA and GPT-NeoX apply them."""

from __future__ import annotations

import torch


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the last dimension's two halves."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first cos.shape[-1] dims of x by position.

    Shapes: x [..., B, T, d_head]; cos, sin [B, T, rotary_dim] (broadcast over leading dims).
    Dimensions past rotary_dim pass through (GPT-NeoX's partial rotary).
    """
    rot = cos.shape[-1]
    cos = cos.to(x.dtype)
    sin = sin.to(x.dtype)
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    rotated = x_rot * cos + rotate_half(x_rot) * sin
    return torch.cat((rotated, x_pass), dim=-1) if x_pass.shape[-1] else rotated
