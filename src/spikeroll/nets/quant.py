"""Weight quantisation for integer networks: B-bit signed weights with a per-layer power-of-two step.

A layer's float weights w (in threshold units, as the float network holds them) become integers
q = clip(round(w / 2^k), qmin, qmax); the step 2^k is a power of two so that, on the chip, it is a
shift (Loihi's weight exponent, see `spikeroll.nets.integer`), never a multiplication.

Widths (`--weight-bits`): 8 (q in -128..127), 4 (-8..7) and 2, which is ternary (-1, 0, 1; the
fourth two-bit code is left unused so that the set is symmetric, as in ternary weight networks).

Choice of the step:
- 8 and 4 bits: the smallest power of two at which no weight clips, so the largest weight keeps
  its full resolution (the step Lava's `optimize_weight_bits` also derives from the weight range,
  lava-nc/lava src/lava/utils/weightutils.py `_determine_weight_exp`).
- ternary: a range-based step would round almost every weight to 0, so the step is the power of
  two nearest 1.4·mean|w| (weights beyond half a step, about 0.7·mean|w|, become ±1: the threshold
  of Li & Liu's ternary weight networks, 2016).
"""

from __future__ import annotations

import math

import torch

from spikeroll.errors import SpikerollError

WEIGHT_BITS = (2, 4, 8)
BIAS_MANT_BITS = 13  # Loihi: bias = bias_mant << bias_exp, mantissa 13-bit signed, exponent 0..7
BIAS_EXP_MAX = 7


def check_bits(bits) -> int:
    """`bits` as an int when it is a supported weight width (8, 4, 2), else a SpikerollError."""
    if bits not in WEIGHT_BITS:
        raise SpikerollError(f"weight_bits={bits} is not supported; choose one of 8, 4 or 2 (ternary), "
                             "or leave it unset for float weights")
    return int(bits)


def q_range(bits: int) -> tuple[int, int]:
    """The integer range of a B-bit weight: ternary for 2 bits, two's complement otherwise."""
    check_bits(bits)
    return (-1, 1) if bits == 2 else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def step_exponent(w: torch.Tensor, bits: int) -> int:
    """k with weight step 2^k for the float weights w (see the module docstring)."""
    qmin, qmax = q_range(bits)
    w = w.detach().double()
    if bits == 2:
        mean = float(w.abs().mean())
        return round(math.log2(1.4 * mean)) if mean > 0 else 0
    need = max(float(w.max()) / qmax, float(w.min()) / qmin, 0.0)
    return math.ceil(math.log2(need)) if need > 0 else 0


def quantise(w: torch.Tensor, k: int, bits: int) -> torch.Tensor:
    """Integer weights (int32) of w at step 2^k, clipped to the B-bit range."""
    qmin, qmax = q_range(bits)
    return torch.clamp(torch.round(w.detach().double() * 2.0 ** -k), qmin, qmax).to(torch.int32)


class _RoundSTE(torch.autograd.Function):
    """round(w / 2^k) clipped, times 2^k, with the straight-through gradient (identity): the
    quantisation-aware-training baseline (as Lava-DL's slayer quantises weights in its blocks)."""

    @staticmethod
    def forward(ctx, w, k, bits):
        return quantise(w, k, bits).to(w.dtype) * 2.0 ** k

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


def fake_quantise(w: torch.Tensor, k: int, bits: int) -> torch.Tensor:
    """q·2^k as float, differentiable straight through: used only by the BPTT baselines."""
    return _RoundSTE.apply(w, k, bits)


def bias_exponent(bias_v: torch.Tensor) -> int:
    """Smallest bias_exp in 0..7 at which every bias (in voltage units) fits the 13-bit mantissa."""
    largest = float(bias_v.detach().abs().max()) if bias_v.numel() else 0.0
    for exp in range(BIAS_EXP_MAX + 1):
        if largest / 2**exp <= (1 << (BIAS_MANT_BITS - 1)) - 1:
            return exp
    return BIAS_EXP_MAX


def quantise_bias(bias_v: torch.Tensor, exp: int) -> torch.Tensor:
    """Bias mantissas (int64) at bias_exp `exp`: round, then clip to the 13-bit signed range."""
    lo, hi = -(1 << (BIAS_MANT_BITS - 1)), (1 << (BIAS_MANT_BITS - 1)) - 1
    return torch.clamp(torch.round(bias_v.detach().double() / 2**exp), lo, hi).to(torch.int64)


def decay_from_beta(beta: float) -> int:
    """Loihi's 12-bit voltage decay dv with v <- v·(4096 − dv)/4096, closest to v <- β·v."""
    dv = round(4096 * (1.0 - beta))
    if not 0 <= dv <= 4095:
        raise SpikerollError(f"beta={beta} has no 12-bit Loihi decay (dv = {dv} is outside 0..4095); "
                             "use a beta in [0.0003, 1]")
    return dv
