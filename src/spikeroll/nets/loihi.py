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
accumulates the next dense layer's integer input from the spikes as they happen. Its steps are
small numba functions inlined into it (`_correction`, `_synaptic_input`, `_lif_update`, `_spike`,
`_project`, `_write_next`), so the compiled loops are those of one function.
"""

from __future__ import annotations

import numpy as np

from spikeroll.errors import SpikerollError

try:
    from numba import njit, prange

    from spikeroll.nets.kernels import cached_njit  # compile cache in a writable folder, as the float kernel's
except ImportError:  # pragma: no cover - numba is a dependency; this guards odd installs
    njit = None

DECAY_SHIFT = 12  # decays are 12-bit fractions of 4096
ACT_SHIFT = 6  # synaptic input and threshold are MSB-aligned by 6 bits
UV_MAX = 1 << 23  # u and v are 24-bit signed
DS_OFFSET, DM_OFFSET = 1, 0
BLOCK = 256  # samples per kernel job (the float kernel, spikeroll.nets.kernels, takes 64)
EMPTY_I64_2 = np.zeros((0, 0), np.int64)  # stand-ins for an absent array: the kernel tests for size 0
EMPTY_I64_3 = np.zeros((0, 0, 0), np.int64)
EMPTY_I64_4 = np.zeros((0, 0, 0, 0), np.int64)


def require_kernel() -> None:
    """Raise a SpikerollError when numba, which runs the integer kernel, cannot be imported."""
    if njit is None:
        raise SpikerollError("--neuron loihi needs numba for its integer kernel; install it with "
                             "`pip install numba` (it is a dependency of spikeroll)")


def loihi_layer(base, bias, layer: dict, spiking: bool, out_sum, noise=None, project=None, record=None,
                counts=None) -> None:
    """One Loihi LIF layer for M members × B samples over S steps (samples are the last axis),
    written into the arrays given. Per neuron and step (the module docstring gives Lava's source):
        a <- (W·s of step t − 1) << weight_exp << 6   (>> −weight_exp when negative, flooring)
        u <- sgn(u')·(|u'| >> 12) + a,  u' = u·(4096 − (du + 1)),  wrapped once into 24 bits
        v <- clip(sgn(v')·(|v'| >> 12) + u + bias, ±(2^23 − 1)),  v' = v·(4096 − dv)
        s = [v > vth << 6];  v <- 0 where s

    base      (1 or M, S, H, B) int32: the dense accumulation W·s of each step, before the exponent
              shift and the delay (shared by all members when its first dim is 1)
    bias      (M, H) int32: each member's bias in voltage units (bias_mant << bias_exp)
    layer     the layer's integers (`IntegerNet.layers()`): weight_exp, du, dv, vth
    spiking   False: a non-spiking readout, out_sum (M, H, B) int64 += v every step; True: spikes,
              which out_sum counts unless `project` is given
    noise     None (no weight noise), or (xb, per_member, afx, shift): xb (P or M, S, r, B) int64 is
              s·B8 of the member's pair (per_member False: the first layer) or of the member (True),
              afx (P, H, r) int64 the pair's fixed-point A (σ folded in); member m = 2k + j adds
              (−1)^j · ((xb·afxᵀ) >> shift) to its accumulation
    project   None, or (qt_next, b_next, raw_next, xb_next): with qt_next (H, O) int64 the next
              layer's W·s goes to raw_next (M, S, O, B) int32 and, when b_next (P, H, r') int64 is
              not None, s·B8 to xb_next (M, S, r', B) int64
    record    None, or (u, v, spikes), each (M, S, H, B) int64: every step's u, v (after reset)
              and spikes
    counts    None, or (M, blocks of BLOCK samples) int64: a spiking layer's spikes of each member
              and block are added to its slot (one job owns a pair's two slots: no races)
    """
    neuron = (layer["weight_exp"], layer["du"], layer["dv"], layer["vth"])
    if noise is None:
        noise = (EMPTY_I64_4, False, EMPTY_I64_3, 0)
    qt_next, b_next, raw_next, xb_next = (EMPTY_I64_2, None, EMPTY_I64_4, None) if project is None else project
    project = (qt_next, EMPTY_I64_3 if b_next is None else b_next, raw_next,
               EMPTY_I64_4 if xb_next is None else xb_next)
    _loihi_layer(base, bias, neuron, spiking, noise, project, out_sum,
                 (EMPTY_I64_4,) * 3 if record is None else tuple(record), EMPTY_I64_2 if counts is None else counts)


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

    # The kernel's steps. Each is inlined into `_loihi_layer` at numba's IR level (inline="always"),
    # so they cost no calls; every loop runs over the block's nb contiguous samples and vectorises.

    @njit(inline="always")
    def _correction(corr, xb, xm, step, afx, k, shift, b0, nb):  # pragma: no cover
        """corr[h, :nb] <- (Σ_q xb[xm, step, q, b0 + i]·afx[k, h, q]) >> shift for every neuron h:
        the integer low-rank correction of the dense accumulation of `step`, on one block."""
        for h in range(afx.shape[1]):
            for bb in range(nb):
                corr[h, bb] = 0
            for q in range(afx.shape[2]):
                f = afx[k, h, q]
                for bb in range(nb):
                    corr[h, bb] += xb[xm, step, q, b0 + bb] * f
            for bb in range(nb):
                corr[h, bb] = corr[h, bb] >> shift

    @njit(inline="always")
    def _synaptic_input(a, base, bm, t, h, b0, nb, noisy, sign, corr, weight_exp):  # pragma: no cover
        """a[:nb] <- neuron h's synaptic input at step t: the dense accumulation of step t − 1 (one
        step of delay; 0 at t = 0) plus sign·corr when noisy, shifted by the weight exponent
        (flooring when negative) and MSB-aligned: a = (W·s << weight_exp) << 6."""
        # loop-invariant cases are separate loops, so that each one vectorises
        if t == 0:
            for bb in range(nb):
                a[bb] = 0
        elif noisy:
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

    @njit(inline="always")
    def _decay(x, keep):  # pragma: no cover
        """sgn(x)·((|x|·keep) >> 12): x decayed by keep/4096, rounded toward zero."""
        ax = -x if x < 0 else x
        d = (ax * keep) >> DECAY_SHIFT
        return -d if x < 0 else d

    @njit(inline="always")
    def _lif_update(uh, vh, a, bias_h, keep_u, keep_v, nb):  # pragma: no cover
        """One step of Loihi's sub-threshold dynamics on a block of one neuron:
            u <- sgn(u')·(|u'| >> 12) + a, u' = u·keep_u, then wrapped once into 24 bits
            v <- clip(sgn(v')·(|v'| >> 12) + u + bias, −(2^23 − 1), 2^23 − 1), v' = v·keep_v"""
        vmax = UV_MAX - 1
        for bb in range(nb):
            un = _decay(np.int64(uh[bb]), keep_u) + a[bb]
            un = un - 2 * UV_MAX if un > UV_MAX else un  # Lava wraps u once into 24 bits
            un = un + 2 * UV_MAX if un <= -UV_MAX else un
            uh[bb] = un
            vn = _decay(np.int64(vh[bb]), keep_v) + np.int64(uh[bb]) + bias_h
            vh[bb] = min(max(vn, -vmax), vmax)

    @njit(inline="always")
    def _spike(vh, s, vth_v, nb):  # pragma: no cover
        """s <- [v > vth << 6], then v <- 0 where it spiked; returns the block's spike count."""
        fired = 0
        for bb in range(nb):
            fire = 1 if vh[bb] > vth_v else 0
            s[bb] = fire
            fired += fire
            vh[bb] = 0 if fire else vh[bb]
        return fired

    @njit(inline="always")
    def _project(nxt, nxt_b, s, qt_next, b_next, k, h, nb):  # pragma: no cover
        """Neuron h's spikes s of the block into the next layer's step accumulation, dense over
        the block (vectorises): nxt[o] += s·qt_next[h, o] (W·s), nxt_b[q] += s·b_next[k, h, q] (s·B8)."""
        for o in range(qt_next.shape[1]):
            w = np.int32(qt_next[h, o])
            row = nxt[o]
            for bb in range(nb):
                row[bb] += s[bb] * w
        for q in range(b_next.shape[2]):
            w = np.int32(b_next[k, h, q])
            row = nxt_b[q]
            for bb in range(nb):
                row[bb] += s[bb] * w

    @njit(inline="always")
    def _write_next(raw_next, xb_next, nxt, nxt_b, m, t, b0, nb):  # pragma: no cover
        """Member m's step-t accumulation for the next layer, written once: raw_next (W·s) and,
        when it is not empty, xb_next (s·B8)."""
        for o in range(raw_next.shape[2]):
            for bb in range(nb):
                raw_next[m, t, o, b0 + bb] = nxt[o, bb]
        if xb_next.shape[0] > 0:
            for q in range(xb_next.shape[2]):
                for bb in range(nb):
                    xb_next[m, t, q, b0 + bb] = nxt_b[q, bb]

    @cached_njit(parallel=True)
    def _loihi_layer(base, bias, neuron, spiking, noise, nxt_out, out_sum, rec, counts):  # pragma: no cover
        """`loihi_layer` compiled; absent arrays are empty (size 0) rather than None.

        neuron = (weight_exp, du, dv, vth), noise = (xb, per_member, afx, shift),
        nxt_out = (qt_next, b_next, raw_next, xb_next), rec = (u, v, spikes): as `loihi_layer` takes
        them, with empty arrays for None; counts (M, blocks) int64, or empty.
        One job is one pair's two members on a block of up to BLOCK = 256 samples: a shared input's
        correction is formed once for both members, and every inner loop runs over the block's
        contiguous samples, so the compiler vectorises it. u and v are stored as int32 (24-bit
        values); the arithmetic is int64.
        """
        weight_exp, du, dv, vth = neuron
        xb, xb_per_member, afx, shift = noise
        qt_next, b_next, raw_next, xb_next = nxt_out
        S, H, B = base.shape[1], base.shape[2], base.shape[3]
        M = bias.shape[0]
        shared = base.shape[0] == 1
        noisy = afx.shape[0] > 0
        record = rec[1].shape[0] > 0
        counting = counts.shape[0] > 0
        project = qt_next.shape[0] > 0
        O = qt_next.shape[1]
        r2 = b_next.shape[2]
        vth_v = vth << ACT_SHIFT
        keep_u = (1 << DECAY_SHIFT) - (du + DS_OFFSET)
        keep_v = (1 << DECAY_SHIFT) - (dv + DM_OFFSET)
        blocks = (B + BLOCK - 1) // BLOCK
        for job in prange(((M + 1) // 2) * blocks):
            k = job // blocks
            b0 = (job - k * blocks) * BLOCK
            nb = min(BLOCK, B - b0)
            members = min(2, M - 2 * k)
            width = min(BLOCK, B)  # a job's buffers: a control policy's few samples need no full block
            u = np.zeros((2, H, width), np.int32)
            v = np.zeros((2, H, width), np.int32)
            corr = np.zeros((H, width), np.int64)
            a = np.zeros(width, np.int64)
            s = np.zeros(width, np.int32)
            nxt = np.zeros((max(O, 1), width), np.int32)  # next layer's W·s of this step, per sample
            nxt_b = np.zeros((max(r2, 1), width), np.int32)  # and s·B8 (|values| <= 127·H)
            for t in range(S):
                for j in range(members):
                    m = 2 * k + j
                    sign = 1 - 2 * j
                    if t > 0 and noisy and (j == 0 or xb_per_member):  # the pair's (or member's) correction
                        _correction(corr, xb, m if xb_per_member else k, t - 1, afx, k, shift, b0, nb)
                    bm = 0 if shared else m
                    if project:
                        nxt[:, :] = 0
                        nxt_b[:, :] = 0
                    for h in range(H):
                        uh = u[j, h]
                        vh = v[j, h]
                        _synaptic_input(a, base, bm, t, h, b0, nb, noisy, sign, corr, weight_exp)
                        _lif_update(uh, vh, a, np.int64(bias[m, h]), keep_u, keep_v, nb)
                        fired = _spike(vh, s, vth_v, nb) if spiking else 0
                        if not spiking:
                            for bb in range(nb):
                                out_sum[m, h, b0 + bb] += vh[bb]
                        elif fired > 0:
                            if counting:
                                counts[m, job - k * blocks] += fired
                            if project:
                                _project(nxt, nxt_b, s, qt_next, b_next, k, h, nb)
                            else:
                                for bb in range(nb):
                                    out_sum[m, h, b0 + bb] += s[bb]
                        if record:  # u, v, spikes; here rather than in a helper, which made the kernel ~3 % slower
                            for bb in range(nb):
                                rec[0][m, t, h, b0 + bb] = uh[bb]
                                rec[1][m, t, h, b0 + bb] = vh[bb]
                                rec[2][m, t, h, b0 + bb] = s[bb]
                    if project:
                        _write_next(raw_next, xb_next, nxt, nxt_b, m, t, b0, nb)
