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

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spikeroll.modules import fused

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


def shared_low_rank(module, x, y, weight_noise, bias_noise, pairs: int) -> torch.Tensor:
    """`linear_delta`/`conv_delta` + `combine` for a shared input and low-rank noise, in one pass
    of the fused kernel (CPU float32): the same products, then y ± Δ written once per member."""
    a, b = weight_noise  # (P, out, r) scaled, (P, n, r)
    r = b.shape[-1]
    if isinstance(module, nn.Linear):
        n = x.shape[-1]
        z = x.reshape(-1, n) @ b.transpose(0, 1).reshape(n, -1)  # (R, P·r): as linear_delta's shared product
        rows, out, spatial = z.shape[0], module.out_features, 1
    else:
        z = _conv(module, x, b.transpose(1, 2).reshape(pairs * r, *module.weight.shape[1:]), 1)  # (B, P·r, *S)
        rows, out, spatial = z.shape[0], module.out_channels, z[0, 0].numel()
    members = fused.expand_shared(y.reshape(rows, out, spatial), z.reshape(rows, pairs, r, spatial), a, bias_noise)
    return members.reshape(-1, *y.shape[1:])


def per_member_low_rank(module, x, y, weight_noise, bias_noise, pairs: int) -> torch.Tensor | None:
    """`linear_delta`/`conv_delta` + `combine` for a per-member input and low-rank noise, through
    the fused kernels (CPU float32): x·B_k (a batched product, or the conv kernel), then y ± the
    correction written once. None where the conv kernel does not apply."""
    a, b = weight_noise
    if isinstance(module, nn.Linear):  # rows of every leading axis, one output position each
        xb = torch.bmm(x.reshape(pairs, -1, x.shape[-1]), b).reshape(-1, b.shape[-1], 1)
        own = y.reshape(-1, y.shape[-1], 1)
    else:
        xb, own = fused.conv_project(module, x, b), y
        if xb is None:
            return None
    return fused.add_low_rank(own, xb, a, bias_noise, pairs).reshape(y.shape)


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


class SharedOutputs:
    """A layer's own output for a shared input (the minibatch itself), computed in the first
    slice of pairs of a population forward and reused by the later ones, which feed it the same
    minibatch: installed as the layer's forward while the population runs (modules.es). The i-th
    shared call of a slice is answered from the i-th of the first slice only when its input is
    equal to the one remembered; any other call runs the layer itself."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.is_shared, self.index = None, 0

    def start_slice(self, is_shared) -> None:
        """A new slice of pairs; is_shared(x): whether x has the minibatch's rows."""
        self.is_shared, self.index = is_shared, 0

    def __call__(self, x, *args, **kwargs):
        """The layer's forward: the remembered output for the i-th shared call of a slice when its
        input is unchanged, the layer's own forward otherwise."""
        own = type(self.module).forward
        if args or kwargs or not isinstance(x, torch.Tensor) or not self.is_shared(x):
            return own(self.module, x, *args, **kwargs)
        i, self.index = self.index, self.index + 1
        if i < len(self.calls):
            seen, y = self.calls[i]
            if _same_values(seen, x):
                return y
        y = own(self.module, x)
        self.calls[i:i + 1] = [(x, y)]
        return y


def _same_values(seen: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether x holds the same bits as `seen` (which we keep alive, so its memory is not reused):
    the same view of the same unmodified storage, or equal contents, compared byte for byte."""
    if seen.shape != x.shape or seen.dtype != x.dtype or seen.device != x.device:
        return False
    if (seen.data_ptr() == x.data_ptr() and seen.stride() == x.stride() and seen._version == x._version):
        return True
    if x.device.type == "cpu" and seen.is_contiguous() and x.is_contiguous():
        # numpy compares bytes several times faster than torch.equal on CPU
        return bool(np.array_equal(seen.view(torch.uint8).numpy(), x.view(torch.uint8).numpy()))
    return torch.equal(seen, x)
