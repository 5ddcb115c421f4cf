"""Fused CPU kernels for the population forward of a user's module (numba, compiled on first use
and cached on disk, like spikeroll.nets.kernels).

Why: in eager PyTorch each elementwise step over the population's N·B rows is its own pass
through memory. Two such places dominated a generation of a dense snnTorch network (profile in
docs/modules.md): expanding a shared layer's output to every member (the product, the correction
and the sum: three passes) and the neuron itself (snnTorch's Leaky makes about ten). Each kernel
here does its job in one pass, float32, with the same operations in the same order as the code
it replaces, so the results are the same bits (tests/test_module_fused.py checks that against
snnTorch and against spikeroll's PyTorch path).
"""

from __future__ import annotations

import numpy as np
import torch

from spikeroll.nets import kernels
from spikeroll.nets.kernels import as_array

if kernels.available():

    @kernels.cached_njit(inline="always")  # called, not inlined, it made the kernels ~15 % slower
    def _correction(z, t, a, o, bias, with_bias):  # pragma: no cover
        """One member's correction of output o at position t: Σ_k z[k, t]·a[o, k] (+ bias), summed
        in k order (as the PyTorch path's single product does at rank 1)."""
        d = z[0, t] * a[o, 0]
        for k in range(1, z.shape[0]):
            d += z[k, t] * a[o, k]
        return d + bias if with_bias else d

    @kernels.cached_njit(nogil=True)
    def _expand_shared(y, z, a, bias, out, first_job, last_job):  # pragma: no cover
        """Jobs are pairs p. out[p, 0] = y + Δ_p, out[p, 1] = y − Δ_p, where
        Δ_p[row, o, s] = Σ_k z[row, p, k, s]·a[p, o, k] (+ bias[p, o] when bias has P rows).

        y (R, O, S) the layer's own output for the shared rows; z (R, P, K, S) the rows times each
        pair's K filters/columns B_k; a (P, O, K) A_k·σ/√r; out (P, 2, R, O, S)."""
        R, O, S = y.shape
        K = z.shape[2]
        with_bias, zero = bias.shape[0] > 0, np.float32(0.0)
        for p in range(first_job, last_job):
            ap = a[p]
            for row in range(R):
                yr, zr, plus, minus = y[row], z[row, p], out[p, 0, row], out[p, 1, row]
                if S == 1 and K == 1:  # a Linear at rank 1: one product per output, contiguous over o
                    zk = zr[0, 0]
                    for o in range(O):
                        d = zk * ap[o, 0]
                        if with_bias:
                            d = d + bias[p, o]
                        plus[o, 0] = yr[o, 0] + d
                        minus[o, 0] = yr[o, 0] - d
                    continue
                for o in range(O):
                    c = bias[p, o] if with_bias else zero
                    for s in range(S):
                        d = _correction(zr, s, ap, o, c, with_bias)
                        plus[o, s] = yr[o, s] + d
                        minus[o, s] = yr[o, s] - d

    @kernels.cached_njit(nogil=True)
    def _add_low_rank(y, xb, a, bias, out, first_job, last_job):  # pragma: no cover
        """A per-member layer's output plus each member's correction; jobs are pairs p.
        out[p, s, row, o, t] = y[p, s, row, o, t] ± (Σ_k xb[p, s, row, k, t]·a[p, o, k] + bias[p, o]),
        + for s = 0, − for s = 1. y (P, 2, R, O, S), xb (P, 2, R, K, S), a (P, O, K), bias (P, O)."""
        _, _, R, O, S = y.shape
        with_bias, zero = bias.shape[0] > 0, np.float32(0.0)
        for p in range(first_job, last_job):
            ap = a[p]
            for s in range(2):
                for row in range(R):
                    yr, zr, orow = y[p, s, row], xb[p, s, row], out[p, s, row]
                    for o in range(O):
                        c = bias[p, o] if with_bias else zero
                        for t in range(S):
                            d = _correction(zr, t, ap, o, c, with_bias)
                            orow[o, t] = yr[o, t] + d if s == 0 else yr[o, t] - d

    @kernels.cached_njit(nogil=True)
    def _conv_project(x, b, stride, padding, dilation, kernel, xb, first_job, last_job):  # pragma: no cover
        """Each member's input convolved with its pair's K filters B_k; jobs are pairs p, whose
        members' rows are contiguous (member-major). x (M, C, H, W), b (P, C·kh·kw, K) with
        columns in (c, ky, kx) order, xb (M, K, Ho·Wo) out. Zero padding. A pair's rows share
        its filters, so its input is first laid out rows-last and every multiply-add runs over
        all of them at once (vectorised); each output still sums its terms in (c, ky, kx) order."""
        M, C, H, W = x.shape
        K, L = xb.shape[1], xb.shape[2]
        R = M // b.shape[0]
        kh, kw = kernel[0], kernel[1]
        Wo = (W + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
        Ho = L // Wo
        rows_last = np.empty((C * H * W, R), np.float32)
        acc = np.empty((L, R), np.float32)
        for p in range(first_job, last_job):
            r0 = p * R
            for r in range(R):
                xr = x[r0 + r].reshape(C * H * W)
                for j in range(C * H * W):
                    rows_last[j, r] = xr[j]
            for k in range(K):
                acc[:, :] = 0.0
                for c in range(C):
                    for ky in range(kh):
                        for kx in range(kw):
                            w = b[p, (c * kh + ky) * kw + kx, k]
                            for oy in range(Ho):
                                iy = oy * stride[0] - padding[0] + ky * dilation[0]
                                if iy < 0 or iy >= H:
                                    continue
                                for ox in range(Wo):
                                    ix = ox * stride[1] - padding[1] + kx * dilation[1]
                                    if ix < 0 or ix >= W:
                                        continue
                                    into, source = acc[oy * Wo + ox], rows_last[(c * H + iy) * W + ix]
                                    for r in range(R):
                                        into[r] += source[r] * w
                for r in range(R):
                    for pos in range(L):
                        xb[r0 + r, k, pos] = acc[pos, r]

    @kernels.cached_njit(nogil=True)
    def _leaky(current, mem, beta, threshold, graded, mode, new_mem, spikes, first_job, last_job):  # pragma: no cover
        """snnTorch's Leaky step, elementwise over flat arrays; jobs are blocks of LEAKY_BLOCK.
        mode 0: subtract reset, 1: reset to zero, 2: no reset; mem of length 0: from rest. The
        same expressions in the same order: reset = H(mem − θ); mem ← (1 − reset)·mem (zero);
        v = β·mem + I (− reset·θ, subtract); spike = H(v − θ)·graded, H(x) = 1 if x > 0 else 0."""
        one, zero = np.float32(1.0), np.float32(0.0)
        n = current.shape[0]
        rest = mem.shape[0] == 0
        for job in range(first_job, last_job):
            lo = job * LEAKY_BLOCK
            hi = min(n, lo + LEAKY_BLOCK)
            c, nm, sp = current[lo:hi], new_mem[lo:hi], spikes[lo:hi]
            m_in = mem[lo:hi] if not rest else mem
            for i in range(hi - lo):  # mode and rest do not change in the loop: the compiler hoists them
                m = zero if rest else m_in[i]
                r = np.float32(m - threshold > zero)
                if mode == 0:
                    v = beta * m + c[i] - r * threshold
                elif mode == 1:
                    v = beta * ((one - r) * m) + c[i]
                else:
                    v = beta * m + c[i]
                nm[i] = v
                sp[i] = np.float32(v - threshold > zero) * graded


LEAKY_BLOCK = 1 << 16  # elements per job: large enough that a job's overhead vanishes


def applies(*tensors: torch.Tensor) -> bool:
    """Whether the kernels can take these tensors: numba present, CPU, float32, no autograd."""
    return kernels.available() and not torch.is_grad_enabled() and all(
        t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def expand_shared(y: torch.Tensor, z: torch.Tensor, a: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Every member's output of a layer whose input is shared: y (R, O, S), z (R, P, K, S),
    a (P, O, K), bias (P, O) or None -> (P, 2, R, O, S), pair p's + and − members."""
    R, O, S = y.shape
    P, K = z.shape[1], z.shape[2]
    bias_ok = bias is None or tuple(bias.shape) == (P, O)
    if tuple(z.shape) != (R, P, K, S) or tuple(a.shape) != (P, O, K) or not bias_ok:
        raise ValueError(f"expand_shared: inconsistent shapes y {tuple(y.shape)}, z {tuple(z.shape)}, "
                         f"a {tuple(a.shape)}")
    out = torch.empty(P, 2, R, O, S)
    args = (as_array(y), as_array(z), as_array(a), as_array(bias, kernels.EMPTY2), out.numpy())
    kernels.run_jobs(_expand_shared, args, P)
    return out


def leaky_step(current: torch.Tensor, mem: torch.Tensor | None, beta: float, threshold: float, graded: float,
               mode: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One snnTorch Leaky step in one pass -> (new membrane, spikes), each shaped like `current`;
    mem None: from rest (zeros); beta, threshold and graded are float32 scalars.

        r = H(mem − θ);  mem <- β·mem + I − r·θ (mode 0, subtract), β·(1 − r)·mem + I (mode 1,
        zero) or β·mem + I (mode 2, none);  s = H(mem − θ)·graded,  H(x) = [x > 0]"""
    if mem is not None and mem.shape != current.shape:
        raise ValueError(f"leaky_step: membrane {tuple(mem.shape)} and current {tuple(current.shape)} differ")
    new_mem, spikes = (torch.empty_like(current, memory_format=torch.contiguous_format) for _ in range(2))
    f32 = np.float32
    args = (as_array(current).reshape(-1), as_array(mem, kernels.EMPTY1).reshape(-1), f32(beta), f32(threshold),
            f32(graded), int(mode), new_mem.numpy().reshape(-1), spikes.numpy().reshape(-1))
    kernels.run_jobs(_leaky, args, -(-current.numel() // LEAKY_BLOCK))
    return new_mem, spikes


def add_low_rank(y: torch.Tensor, xb: torch.Tensor, a: torch.Tensor, bias: torch.Tensor | None,
                 pairs: int) -> torch.Tensor:
    """y (2P·R, O, *S) the layer's own output for per-member rows, xb (2P·R, K, *S) each row
    times its pair's B_k -> y ± (xb·A_kᵀ + bias), member-major like y."""
    O, K = y.shape[1], xb.shape[1]
    shape = (pairs, 2, y.shape[0] // (2 * pairs))
    out = torch.empty(y.shape)
    args = (as_array(y).reshape(*shape, O, -1), as_array(xb).reshape(*shape, K, -1), as_array(a),
            as_array(bias, kernels.EMPTY2), out.numpy().reshape(*shape, O, -1))
    kernels.run_jobs(_add_low_rank, args, pairs)
    return out


def conv_project(module, x: torch.Tensor, b: torch.Tensor) -> torch.Tensor | None:
    """Each member's input convolved with its pair's filters B_k: x (2P·R, C, *In), b (P, C·k, K)
    -> (2P·R, K, *Out); None where the kernel does not apply (padding other than zeros or given
    as a string)."""
    if module.padding_mode != "zeros" or isinstance(module.padding, str):
        return None
    two_d = isinstance(module, torch.nn.Conv2d)
    as_2d = (lambda v, _: tuple(v)) if two_d else (lambda v, height: (height, v[0]))  # Conv1d: a height-1 image
    x4 = x if two_d else x.unsqueeze(2)
    kernel, stride = as_2d(module.kernel_size, 1), as_2d(module.stride, 1)
    padding, dilation = as_2d(module.padding, 0), as_2d(module.dilation, 1)
    sizes = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in
             zip(x4.shape[2:], padding, dilation, kernel, stride)]
    xb = torch.empty(x4.shape[0], b.shape[2], sizes[0] * sizes[1])
    geometry = (np.array(stride), np.array(padding), np.array(dilation), np.array(kernel))
    args = (as_array(x4), as_array(b), *geometry, xb.numpy())
    kernels.run_jobs(_conv_project, args, b.shape[0])
    return xb.view(x4.shape[0], b.shape[2], *(sizes if two_d else sizes[1:]))
