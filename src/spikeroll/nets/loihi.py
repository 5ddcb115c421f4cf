"""Loihi's LIF neuron and dense synapse in integer arithmetic, for a whole population at once.

The arithmetic is that of Lava's bit-accurate CPU models (lava-nc/lava at b6822fb):
- `src/lava/proc/dense/models.py`, `AbstractPyDenseModelBitAcc.run_spk`: a dense layer sends at
  step t the accumulation a_buff of step t − 1 (one step of synaptic delay), where
  a_buff = (W·s) << weight_exp, or >> −weight_exp (an arithmetic, i.e. flooring, shift) when the
  exponent is negative. Spikes of the first layer may be graded (`num_message_bits` > 0: W·s with
  integer s), which is how the input event counts enter (see `spikeroll.nets.integer`).
- `src/lava/proc/lif/models.py`, `AbstractPyLifModelFixed.subthr_dynamics` and
  `PyLifModelBitAcc.spiking_activation`:
      u <- sgn(u')·(|u'| >> 12) + (a_in << 6),   u' = u·(4096 − (du + 1))   (ds_offset = 1: du = 4095 clears u)
           then wrapped once into 24 bits: u − 2^24 if u > 2^23, u + 2^24 if u <= −2^23
      v <- clip(sgn(v')·(|v'| >> 12) + u + bias, −(2^23 − 1), 2^23 − 1),   v' = v·(4096 − dv)   (dm_offset = 0)
      spike where v > vth << 6, then v <- 0
  sgn(x)·(|x| >> 12) rounds toward zero, so negative voltages decay exactly like positive ones.
The wrap of u reproduces Lava's code line for line (including that u = 2^23 is not wrapped).

The kernel evaluates one layer for every (member, sample) pair in parallel, forming the member's
input on the fly (shared accumulation plus its integer low-rank correction, see `loihi_layer`), and
accumulates the next dense layer's integer input from the spikes as they happen.
"""

from __future__ import annotations

import numpy as np

from spikeroll.errors import SpikerollError

try:
    from numba import njit, prange

    from spikeroll.nets.kernels import cached_njit  # its compile cache in a writable folder, as the float kernel's
except ImportError:  # pragma: no cover - numba is a dependency; this guards odd installs
    njit = None

DECAY_SHIFT = 12  # decays are 12-bit fractions of 4096
ACT_SHIFT = 6  # synaptic input and threshold are MSB-aligned by 6 bits
UV_MAX = 1 << 23  # u and v are 24-bit signed
DS_OFFSET, DM_OFFSET = 1, 0
BLOCK = 256  # samples per kernel job, as the float kernel's (spikeroll.nets.kernels)
EMPTY_I64_2 = np.zeros((0, 0), np.int64)
EMPTY_I64_3 = np.zeros((0, 0, 0), np.int64)
EMPTY_I64_4 = np.zeros((0, 0, 0, 0), np.int64)


def require_kernel() -> None:
    if njit is None:
        raise SpikerollError("--neuron loihi needs numba for its integer kernel; install it with "
                             "`pip install numba` (it is a dependency of spikeroll)")


if njit is not None:

    @cached_njit(parallel=True)
    def sparse_matmul(x, wt):  # pragma: no cover
        """x (R, n) int32 · wt (n, C) int32 -> (R, C) int64, visiting only the nonzero inputs
        (event frames are mostly zeros): int32 products, int64 sums."""
        R, n = x.shape
        out = np.zeros((R, wt.shape[1]), np.int64)
        for row in prange(R):
            acc = out[row]
            for j in range(n):
                xj = x[row, j]
                if xj != 0:
                    for c in range(wt.shape[1]):
                        acc[c] += xj * wt[j, c]
        return out

    @cached_njit(parallel=True)
    def loihi_layer(base, xb, xb_per_member, afx, corr_shift, weight_exp, bias, du, dv, vth, spiking,
                    qt_next, b_next, raw_next, xb_next, out_sum, rec_u, rec_v, rec_s):  # pragma: no cover
        """One Loihi LIF layer for M members × B samples over S steps; samples are the last axis.

        base    (1 or M, S, H, B)  int32: the dense accumulation W·s of each step, before the
                                   exponent shift and the delay (shared by all members when its
                                   first dim is 1)
        xb      (P or M, S, r, B)  int64: s·B8 of the member's pair (first layer) or of the member
        afx     (P, H, r)          int64: the pair's fixed-point A (σ folded in); P = 0: no weight
                                   noise. Member m = 2k + j adds (−1)^j · ((xb·afxᵀ) >> corr_shift)
        bias    (M, H)             int32: bias in voltage units (bias_mant << bias_exp)
        spiking                    False: a non-spiking readout, out_sum (M, H, B) += v every step;
                                   True: spikes; with qt_next (H, O) the next layer's W·s goes to
                                   raw_next (M, S, O, B) int32 and s·B8 to xb_next (M, S, r', B);
                                   without, out_sum counts spikes
        rec_*   (M, S, H, B)       when not empty, u, v (after reset) and spikes of every step
        One job is one pair's two members on a block of up to 64 samples: a shared input's
        correction is formed once for both members, and every inner loop runs over the block's
        contiguous samples, so the compiler vectorises it. u and v are stored as int32 (24-bit
        values); the arithmetic is int64.
        """
        S, H, B = base.shape[1], base.shape[2], base.shape[3]
        M = bias.shape[0]
        shared = base.shape[0] == 1
        noisy = afx.shape[0] > 0
        r = afx.shape[2]
        record = rec_v.shape[0] > 0
        project = qt_next.shape[0] > 0
        next_noise = b_next.shape[0] > 0
        O = qt_next.shape[1]
        r2 = b_next.shape[2]
        vth_v = vth << ACT_SHIFT
        keep_u = (1 << DECAY_SHIFT) - (du + DS_OFFSET)
        keep_v = (1 << DECAY_SHIFT) - (dv + DM_OFFSET)
        vmax = UV_MAX - 1
        blocks = (B + BLOCK - 1) // BLOCK
        for job in prange(((M + 1) // 2) * blocks):
            k = job // blocks
            b0 = (job - k * blocks) * BLOCK
            nb = min(BLOCK, B - b0)
            members = min(2, M - 2 * k)
            u = np.zeros((2, H, BLOCK), np.int32)
            v = np.zeros((2, H, BLOCK), np.int32)
            corr = np.zeros((H, BLOCK), np.int64)
            a = np.zeros(BLOCK, np.int64)
            s = np.zeros(BLOCK, np.int32)
            nxt = np.zeros((max(O, 1), BLOCK), np.int32)  # next layer's W·s of this step, per sample
            nxt_b = np.zeros((max(r2, 1), BLOCK), np.int32)  # and s·B8 (|values| <= 127·H)
            for t in range(S):
                for j in range(members):
                    m = 2 * k + j
                    sign = 1 - 2 * j
                    if t > 0 and noisy and (j == 0 or xb_per_member):  # the pair's (or member's) correction
                        xm = m if xb_per_member else k
                        for h in range(H):
                            for bb in range(nb):
                                corr[h, bb] = 0
                            for q in range(r):
                                f = afx[k, h, q]
                                for bb in range(nb):
                                    corr[h, bb] += xb[xm, t - 1, q, b0 + bb] * f
                            for bb in range(nb):
                                corr[h, bb] = corr[h, bb] >> corr_shift
                    bm = 0 if shared else m
                    if project:
                        nxt[:, :] = 0
                        nxt_b[:, :] = 0
                    for h in range(H):
                        uh = u[j, h]
                        vh = v[j, h]
                        # loop-invariant cases are separate loops, so that each one vectorises
                        if t == 0:
                            for bb in range(nb):
                                a[bb] = 0
                        elif noisy:  # the dense layer's output of step t − 1 arrives now (synaptic delay)
                            for bb in range(nb):
                                a[bb] = np.int64(base[bm, t - 1, h, b0 + bb]) + sign * corr[h, bb]
                        else:
                            for bb in range(nb):
                                a[bb] = np.int64(base[bm, t - 1, h, b0 + bb])
                        if weight_exp >= 0:
                            for bb in range(nb):
                                a[bb] = a[bb] << (weight_exp + ACT_SHIFT)
                        else:
                            for bb in range(nb):
                                a[bb] = (a[bb] >> -weight_exp) << ACT_SHIFT
                        bias_h = np.int64(bias[m, h])
                        for bb in range(nb):
                            x = np.int64(uh[bb])
                            ax = -x if x < 0 else x
                            d = (ax * keep_u) >> DECAY_SHIFT
                            un = (-d if x < 0 else d) + a[bb]
                            un = un - 2 * UV_MAX if un > UV_MAX else un  # Lava wraps u once into 24 bits
                            un = un + 2 * UV_MAX if un <= -UV_MAX else un
                            uh[bb] = un
                            x = np.int64(vh[bb])
                            ax = -x if x < 0 else x
                            d = (ax * keep_v) >> DECAY_SHIFT
                            vn = (-d if x < 0 else d) + np.int64(uh[bb]) + bias_h
                            vh[bb] = min(max(vn, -vmax), vmax)
                        fired = 0
                        if spiking:
                            for bb in range(nb):
                                fire = 1 if vh[bb] > vth_v else 0
                                s[bb] = fire
                                fired += fire
                                vh[bb] = 0 if fire else vh[bb]
                        if not spiking:
                            for bb in range(nb):
                                out_sum[m, h, b0 + bb] += vh[bb]
                        elif fired > 0:
                            if project:  # the next layer's W·s, dense over the block (vectorises)
                                for o in range(O):
                                    w = np.int32(qt_next[h, o])
                                    row = nxt[o]
                                    for bb in range(nb):
                                        row[bb] += s[bb] * w
                                for q in range(r2):
                                    w = np.int32(b_next[k, h, q])
                                    row = nxt_b[q]
                                    for bb in range(nb):
                                        row[bb] += s[bb] * w
                            else:
                                for bb in range(nb):
                                    out_sum[m, h, b0 + bb] += s[bb]
                        if record:
                            for bb in range(nb):
                                rec_u[m, t, h, b0 + bb] = uh[bb]
                                rec_v[m, t, h, b0 + bb] = vh[bb]
                                rec_s[m, t, h, b0 + bb] = s[bb]
                    if project:  # the step's accumulation for the next layer, written once
                        for o in range(O):
                            for bb in range(nb):
                                raw_next[m, t, o, b0 + bb] = nxt[o, bb]
                        if next_noise:
                            for q in range(r2):
                                for bb in range(nb):
                                    xb_next[m, t, q, b0 + bb] = nxt_b[q, bb]
