"""Per-member corrections of the layers that hold weight matrices, and per-sample values of every
other parameter, for a population run as one batch of N·B samples.

Members are laid out member-major: sample b of member i is row i·B + b, and the two members of
antithetic pair k (2k: +noise, 2k+1: −noise) are one contiguous block of 2B rows. A layer's
input is either *shared* (B rows: the minibatch itself, the same for every member) or
*per member* (N·B rows). The shared product x·Wᵀ (or conv(x, W)) is what the layer computes
itself; here we only add each member's correction, never a per-member weight matrix:

    Linear, low rank:   (x·B_k)·A_kᵀ                  A pre-scaled by σ/√r
    Conv, low rank:     A_k-mix of conv(x, B_k as r filters)   (W viewed as (out, in·kh·kw))
    full rank:          x·E_kᵀ  or  conv(x, E_k)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


def matrix_shape(module: nn.Module) -> tuple[int, int]:
    """The (m, n) of a layer's weight as a matrix: conv filters flattened to in·kh·kw columns."""
    w = module.weight
    return w.shape[0], w[0].numel()


def _conv(module, x: torch.Tensor, weight: torch.Tensor, groups: int) -> torch.Tensor:
    """`module`'s convolution (stride, padding, padding mode, dilation) with other filters."""
    padding = module.padding
    if module.padding_mode != "zeros":
        x = F.pad(x, module._reversed_padding_repeated_twice, mode=module.padding_mode)
        padding = 0
    fn = F.conv1d if isinstance(module, nn.Conv1d) else F.conv2d
    return fn(x, weight, None, module.stride, padding, module.dilation, groups)


def _pairs_major(x: torch.Tensor, pairs: int) -> torch.Tensor:
    """(2P·B, C, *S) -> (2B, P·C, *S): each pair's samples as channel groups of a grouped conv."""
    return x.view(pairs, -1, *x.shape[1:]).transpose(0, 1).reshape(-1, pairs * x.shape[1], *x.shape[2:])


def linear_delta(x, weight_noise, bias_noise, pairs: int, shared: bool, out: int) -> torch.Tensor:
    """Correction of an nn.Linear for every member: (P, rows, *, out), rows = B (shared) or 2B."""
    n = x.shape[-1]
    rows = x.shape[0] if shared else x.shape[0] // pairs
    flat = x.reshape(-1, n) if shared else x.reshape(pairs, -1, n)
    if weight_noise is None:
        delta = x.new_zeros(pairs, flat.shape[-2], out)
    elif len(weight_noise) == 2:
        a, b = weight_noise  # (P, out, r) scaled, (P, n, r)
        if shared:  # x·B_k for every pair in one (M × n)(n × P·r) product
            xb = (flat @ b.transpose(0, 1).reshape(n, -1)).view(-1, pairs, b.shape[-1]).transpose(0, 1)
        else:
            xb = torch.bmm(flat, b)
        delta = torch.bmm(xb, a.transpose(1, 2))
    else:
        (e,) = weight_noise  # (P, out, n) scaled
        delta = (flat @ e.reshape(-1, n).t()).view(-1, pairs, out).transpose(0, 1) if shared \
            else torch.bmm(flat, e.transpose(1, 2))
    if bias_noise is not None:
        delta = delta + bias_noise[:, None, :]
    return delta.reshape(pairs, rows, *x.shape[1:-1], out)


def conv_delta(module, x, weight_noise, bias_noise, pairs: int, shared: bool) -> torch.Tensor:
    """Correction of an nn.Conv1d/2d for every member: (P, rows, out, *S), rows = B or 2B."""
    out, kernel = module.out_channels, module.weight.shape[1:]
    xin = x if shared else _pairs_major(x, pairs)
    groups = 1 if shared else pairs
    rows = xin.shape[0]
    if weight_noise is None:  # a frozen weight with a trainable bias
        delta = None
    elif len(weight_noise) == 2:
        a, b = weight_noise  # (P, out, r) scaled, (P, in·K, r)
        r = b.shape[-1]
        filters = b.transpose(1, 2).reshape(pairs * r, *kernel)  # the r filters B_k of every pair
        z = _conv(module, xin, filters, groups)  # (rows, P·r, *S)
        spatial = z.shape[2:]
        z = z.reshape(rows, pairs, r, -1)
        delta = torch.einsum("bprs,por->pbos", z, a).reshape(pairs, rows, out, *spatial)
    else:
        (e,) = weight_noise  # (P, out, in, *K) scaled
        z = _conv(module, xin, e.reshape(pairs * out, *kernel), groups)
        delta = z.view(rows, pairs, out, *z.shape[2:]).transpose(0, 1)
    if bias_noise is not None:
        b_term = bias_noise.view(pairs, 1, out, *([1] * (x.dim() - 2)))
        delta = b_term if delta is None else delta + b_term
    return delta  # (P, 1, out, 1, …) when only the bias is perturbed: `combine` broadcasts it


def combine(y: torch.Tensor, delta: torch.Tensor, pairs: int, shared: bool) -> torch.Tensor:
    """The layer's own output y plus ± each pair's correction -> (2P·B, ...) member-major."""
    sign = torch.tensor([1.0, -1.0], dtype=y.dtype, device=y.device).view(1, 2, *([1] * y.dim()))
    if shared:  # y (B, ...) is every member's shared term
        out = torch.addcmul(y[None, None], sign, delta.unsqueeze(1))
    else:  # y (2P·B, ...): each member's own shared term; delta (P, 2B, ...) or broadcastable (P, 1, ...)
        view = (pairs, 2, -1, *y.shape[1:])
        delta = delta.unsqueeze(1) if delta.shape[1] == 1 else delta.reshape(view)
        out = torch.addcmul(y.view(view), sign, delta)
    return out.reshape(-1, *y.shape[1:])


def per_sample(value: torch.Tensor, noise: torch.Tensor, batch: int, ndim: int) -> torch.Tensor:
    """θ ± σE_k of an elementwise parameter, one row per sample: (2P·B, 1, …, *θ.shape), `ndim`
    axes in all, so that it broadcasts against an activation of `ndim` axes with the batch first."""
    members = torch.stack([value + noise, value - noise], dim=1).reshape(-1, *value.shape)  # (N, *shape)
    pad = ndim - 1 - value.dim()
    members = members.view(members.shape[0], 1, *([1] * pad), *value.shape)
    return members.expand(-1, batch, *members.shape[2:]).reshape(-1, *members.shape[2:])
