"""A fused CPU kernel for the population forward: one LIF layer plus the next layer's input
current, in a single pass (numba; compiled on first use and cached on disk).

Why: in eager PyTorch a LIF layer of a population is ~10 elementwise passes over an (N, T, B, H)
tensor, each going through memory; for EGGROLL those passes, not the matrix products, were most of
a generation. Here one job owns one member and a block of up to 64 samples, and keeps their
membrane potentials in L1 cache for all T steps: the layer's current is formed on the fly (shared
x·Wᵀ plus the member's perturbation), the spikes never leave the cache, and the next layer's current
(perturbation included) is accumulated from them at once; for the leaky readout, whose time average
is linear in the spikes, from their time-weighted sum once per block. Every inner loop runs over the samples
of the block, which are contiguous, so the compiler vectorises it.

Layout: currents are (members, features, T, B), samples last. Member n belongs to antithetic pair
k = n // 2 and takes the pair's noise with sign + (n even) or − (n odd), as in
`model.perturbed_current`; arithmetic is float32, so the kernel and the PyTorch path agree to
rounding (a neuron that lands exactly on the threshold can still flip).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch

from spikeroll.cachedir import cache_root, private_temp_dir

try:  # numba is a dependency, but the PyTorch path keeps working where it cannot be imported
    import numba
    from numba import njit
except ImportError:  # pragma: no cover - exercised only on installs without numba
    numba = None

BLOCK = 64  # samples per job: one AVX2 vector is 8 floats, and a block's state stays in L1
EMPTY1 = np.zeros(0, np.float32)
EMPTY2 = np.zeros((0, 0), np.float32)
EMPTY3 = np.zeros((0, 0, 0), np.float32)
EMPTY4 = np.zeros((0, 0, 0, 0), np.float32)
NO_COUNTS = np.zeros((0, 0), np.int64)  # the kernel counts spikes only into a non-empty array


def available() -> bool:
    """Whether numba, and so the fused kernels, can be used."""
    return numba is not None


def applies(device, dtype=None, autograd: bool = False) -> bool:
    """Whether the kernel runs a forward on `device` in `dtype` (float32 when None): the one rule
    that both the forward and the trainer's memory budget follow. Autograd, GPUs and other dtypes
    take the PyTorch path."""
    return (numba is not None and torch.device(device).type == "cpu" and not autograd
            and dtype in (None, torch.float32))


def jit_cache_dir() -> str | None:
    """The folder numba caches spikeroll's compiled kernels in: NUMBA_CACHE_DIR when the user set
    it, else spikeroll's cache folder ($SPIKEROLL_CACHE or ~/.cache/spikeroll)/numba, else a
    private per-user temp folder (spikeroll.cachedir: mode 0700, owned by this user); None when
    none of them can be used (the kernels then compile anew in every process).

    Why: numba's own choice is the package's __pycache__, then ~/.cache/numba, and when neither is
    writable (an installed, read-only package run with a read-only home, as in many containers) it
    refuses to compile a cache=True function at all, so `import spikeroll` would fail."""
    if numba is not None and numba.config.CACHE_DIR:
        return numba.config.CACHE_DIR
    private = private_temp_dir()
    for folder in (cache_root() / "numba", private / "numba" if private else None):
        if folder is None:
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=folder).close()  # the check numba itself makes
            return str(folder)
        except OSError:
            continue
    return None


def cached_njit(**options):
    """numba's @njit(cache=True, **options), cached in jit_cache_dir(). numba picks a function's
    cache folder when it is decorated: point it at ours for this decoration only, and give other
    numba users in the process back their setting."""
    def decorate(fn):
        folder, previous = jit_cache_dir(), numba.config.CACHE_DIR
        numba.config.CACHE_DIR = folder or ""
        try:
            return njit(cache=folder is not None, **options)(fn)
        finally:
            numba.config.CACHE_DIR = previous

    return decorate


if numba is not None:

    @cached_njit(nogil=True)
    def _lif_project(base, xb, a, c, delta, beta, threshold, subtract, weight_t, bias,
                     pb, pa, pc, pfull, time_weights, out, counts, first_job, last_job):  # pragma: no cover
        """Jobs first_job <= job < last_job, job = (member n, block of samples).

        base   (1 or N, H, T, B)  the layer's unperturbed current (shared when its first dim is 1)
        xb, a                     low-rank noise of this layer: (P, r, T, B) x·B_k and (P, r, H) (A_k·σ/√r)ᵀ
        delta  (P, H, T, B)       or full-rank noise x·E_kᵀ·σ instead
        c      (P, H)             this layer's bias noise; any noise has P = 0 when absent
        weight_t (H, O), bias (O) the next layer's Wᵀ and bias
        pb, pa, pc                the next layer's low-rank noise: (P, H, r) B_k, (P, O, r) A_k·σ/√r,
                                  (P, O) bias noise; pfull (P, H, O) its full-rank noise (E_k·σ)ᵀ
        time_weights (T,)         when given, out (N, O, 1, B) is Σ_t w_t·current_t (the leaky
                                  readout in closed form); otherwise out (N, O, T, B) is every step
        counts (N, blocks) int64  when not empty, the job's spikes (all neurons and steps of its
                                  member and block) go to counts[n, block]: one slot per job, no races
        """
        O = out.shape[1]
        H, T, B = base.shape[1], base.shape[2], base.shape[3]
        r, r_next = a.shape[1], pa.shape[2]
        blocks = (B + BLOCK - 1) // BLOCK
        shared = base.shape[0] == 1
        low, dense, noisy_bias = xb.shape[0] > 0, delta.shape[0] > 0, c.shape[0] > 0
        reduce = time_weights.shape[0] > 0
        weight_sum = np.float32(time_weights.sum()) if reduce else np.float32(0.0)
        inline = low and r == 1
        counting = counts.shape[0] > 0
        beta32, threshold32 = np.float32(beta), np.float32(threshold)
        one, zero = np.float32(1.0), np.float32(0.0)
        # scratch, reused by every job of this call
        v, noise = np.empty((H, BLOCK), np.float32), np.empty((H, BLOCK), np.float32)
        spikes, x_b = np.empty((H, BLOCK), np.float32), np.empty(BLOCK, np.float32)
        weighted = np.empty((H, BLOCK), np.float32)  # Σ_t w_t·spikes_t, for the closed-form readout
        fired = np.empty(BLOCK, np.float32)  # spikes per sample of the job (exact below 2^24 per sample)
        acc, acc_noise = np.empty((O, BLOCK), np.float32), np.empty((O, BLOCK), np.float32)
        proj = np.empty((max(r_next, 1), BLOCK), np.float32)
        for job in range(first_job, last_job):
            n, block = job // blocks, job % blocks
            b0 = block * BLOCK
            ub0 = np.uint64(b0)  # unsigned offsets skip the negative-index check, so loads vectorise
            nb = min(BLOCK, B - b0)
            k = n // 2
            sign = one if n % 2 == 0 else -one
            row = 0 if shared else n
            v[:, :nb] = zero
            noise[:, :nb] = zero
            weighted[:, :nb] = zero
            if counting:
                fired[:nb] = zero
            for t in range(T):
                # this layer's perturbation c_k + Σ_j A_k[:, j]·(x·B_k)_j (or + x·E_kᵀ): rank 1 is
                # formed inside the LIF loop below; higher ranks and full rank go through `noise`
                if low and not inline:
                    for h in range(H):
                        for i in range(nb):
                            noise[h, i] = zero
                        for j in range(r):
                            ah = a[k, j, h]
                            for i in range(nb):
                                noise[h, i] += xb[k, j, t, ub0 + np.uint64(i)] * ah
                if dense:
                    for h in range(H):
                        for i in range(nb):
                            noise[h, i] = delta[k, h, t, ub0 + np.uint64(i)]
                for i in range(nb):
                    x_b[i] = xb[k, 0, t, ub0 + np.uint64(i)] if inline else zero
                # LIF: v ← β·v + I; spike = [v ≥ θ]; reset (branch-free, vectorised over samples)
                wt = time_weights[t] if reduce else zero
                for h in range(H):
                    ch = c[k, h] if noisy_bias else zero
                    ah = a[k, 0, h] if inline else zero
                    if counting:  # the same loop plus the count: a branch inside it would slow both
                        for i in range(nb):
                            current = base[row, h, t, ub0 + np.uint64(i)] + sign * (ch + ah * x_b[i] + noise[h, i])
                            vh = beta32 * v[h, i] + current
                            s = np.float32(vh >= threshold32)
                            if not reduce:  # the closed-form readout projects `weighted`, never a step's spikes
                                spikes[h, i] = s
                            v[h, i] = vh - s * threshold32 if subtract else vh * (one - s)
                            if reduce:
                                weighted[h, i] += wt * s
                            fired[i] += s
                        continue
                    for i in range(nb):
                        current = base[row, h, t, ub0 + np.uint64(i)] + sign * (ch + ah * x_b[i] + noise[h, i])
                        vh = beta32 * v[h, i] + current
                        s = np.float32(vh >= threshold32)
                        spikes[h, i] = s
                        v[h, i] = vh - s * threshold32 if subtract else vh * (one - s)
                        if reduce:
                            weighted[h, i] += wt * s
                if not reduce:  # every step's current: project this step's spikes now
                    _project(spikes, nb, k, sign, one, weight_t, bias, pb, pa, pc, pfull, acc, acc_noise, proj)
                    for o in range(O):
                        for i in range(nb):
                            out[n, o, t, ub0 + np.uint64(i)] = acc[o, i]
            if counting:
                total = np.int64(0)
                for i in range(nb):
                    total += np.int64(fired[i])
                counts[n, block] = total
            if reduce:
                # the readout is linear, so Σ_t w_t·(W·s_t + b) = W·(Σ_t w_t·s_t) + b·Σ_t w_t: one
                # projection of the time-weighted spikes replaces T of them
                _project(weighted, nb, k, sign, weight_sum, weight_t, bias, pb, pa, pc, pfull, acc, acc_noise, proj)
                for o in range(O):
                    for i in range(nb):
                        out[n, o, 0, ub0 + np.uint64(i)] = acc[o, i]

    @cached_njit(nogil=True, inline="always")
    def _project(src, nb, k, sign, bias_scale, weight_t, bias, pb, pa, pc, pfull, acc, acc_noise,
                 proj):  # pragma: no cover
        """acc[:, :nb] ← the next layer's current from `src` (H, block): Wᵀ·src + bias_scale·b,
        plus sign × (its perturbation): bias_scale·c_k + A_k·(B_kᵀ·src) or E_k·src."""
        H, O, r_next = src.shape[0], acc.shape[0], pa.shape[2]
        next_low, next_full, next_bias = pa.shape[0] > 0, pfull.shape[0] > 0, pc.shape[0] > 0
        zero = np.float32(0.0)
        for o in range(O):
            for i in range(nb):
                acc[o, i] = bias_scale * bias[o]
                acc_noise[o, i] = bias_scale * pc[k, o] if next_bias else zero
        if next_low:
            proj[:, :nb] = zero
        for h in range(H):
            for o in range(O):
                w = weight_t[h, o]
                for i in range(nb):
                    acc[o, i] += w * src[h, i]
            if next_full:
                for o in range(O):
                    e = pfull[k, h, o]
                    for i in range(nb):
                        acc_noise[o, i] += e * src[h, i]
            if next_low:
                for j in range(r_next):
                    bh = pb[k, h, j]
                    for i in range(nb):
                        proj[j, i] += bh * src[h, i]
        for o in range(O):
            if next_low:
                for j in range(r_next):
                    ao = pa[k, o, j]
                    for i in range(nb):
                        acc_noise[o, i] += ao * proj[j, i]
            for i in range(nb):
                acc[o, i] += sign * acc_noise[o, i]


def as_array(t, empty=None) -> np.ndarray:
    """A CPU tensor as the contiguous NumPy array a kernel takes (sharing its memory when it is
    contiguous already); `empty` (a 0-size array of the right rank) when t is None."""
    return empty if t is None else np.ascontiguousarray(t.detach().numpy())


def lif_project(base, beta, threshold, reset, weight, bias, out_members, layer_noise=None,
                xb=None, delta=None, next_noise=None, time_weights=None, spikes=None):
    """Torch front end of `_lif_project` (CPU float32 tensors): the next layer's current
    (N, O, T, B), or (N, O, 1, B) time-weighted when `time_weights` (T,) is given.

    `layer_noise`/`next_noise` are `LayerNoise` of this layer and the next one (or None); `xb` is
    x·B_k (P, r, T, B) when this layer has low-rank noise, `delta` x·E_kᵀ·σ (P, H, T, B) when it
    has full-rank noise. Jobs are split over torch's thread count: the compiled kernel releases
    the GIL, so plain threads run it in parallel (no second OpenMP runtime beside torch's, whose
    idle spinning would steal the cores torch's own threads need). `spikes` (a list) gets this
    layer's spike count per member (N,) float64, counted per job and summed after.
    """
    _, H, T, B = base.shape
    # the compiled kernel does no bounds checks: stop a shape mistake before it runs
    consistent = (weight.shape[1] == H and base.shape[0] in (1, out_members)
                  and (xb is None or tuple(xb.shape[2:]) == (T, B))
                  and (delta is None or tuple(delta.shape[1:]) == (H, T, B)))
    if not consistent:
        raise ValueError(f"lif_project: inconsistent shapes (base {tuple(base.shape)}, weight "
                         f"{tuple(weight.shape)}, {out_members} members)")
    out = torch.empty(out_members, weight.shape[0], 1 if time_weights is not None else T, B)
    nxt = next_noise
    blocks = -(-B // BLOCK)
    counts = np.zeros((out_members, blocks), np.int64) if spikes is not None else NO_COUNTS
    args = (
        as_array(base, EMPTY4), as_array(xb, EMPTY4),
        as_array(None if xb is None else layer_noise.weight_a.transpose(1, 2), EMPTY3),
        as_array(None if layer_noise is None else layer_noise.bias, EMPTY2),
        as_array(delta, EMPTY4), float(beta), float(threshold), reset == "subtract",
        as_array(weight.t(), EMPTY2), as_array(bias, EMPTY1),
        as_array(None if nxt is None or nxt.weight_b is None else nxt.weight_b, EMPTY3),
        as_array(None if nxt is None or nxt.weight_a is None else nxt.weight_a, EMPTY3),
        as_array(None if nxt is None or nxt.bias is None else nxt.bias, EMPTY2),
        as_array(None if nxt is None or nxt.weight_full is None else nxt.weight_full.transpose(1, 2), EMPTY3),
        as_array(time_weights, EMPTY1), out.numpy(), counts,
    )
    run_jobs(_lif_project, args, out_members * blocks)
    if spikes is not None:
        spikes.append(torch.from_numpy(counts.sum(1)).double())
    return out


def run_jobs(kernel, args: tuple, jobs: int) -> None:
    """kernel(*args, first_job, last_job) over jobs 0..jobs-1, split evenly over torch's thread
    count. The kernels release the GIL, so plain threads run them in parallel."""
    workers = max(1, min(torch.get_num_threads(), jobs))
    if workers == 1:
        kernel(*args, 0, jobs)
        return
    bounds = [jobs * w // workers for w in range(workers + 1)]
    # the calling thread takes the first share itself: one thread fewer to wake and wait for
    futures = [_pool(workers - 1).submit(kernel, *args, lo, hi) for lo, hi in zip(bounds[1:-1], bounds[2:])]
    kernel(*args, bounds[0], bounds[1])
    for f in futures:
        f.result()


@contextmanager
def numba_threads(threads: int) -> Iterator[None]:
    """numba's thread count (its prange kernels: the integer network's) at most `threads` for the
    block, restored after it; nothing where numba is missing."""
    if numba is None:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(before)


_POOLS: dict[int, object] = {}


def _pool(workers: int):
    """One long-lived thread pool per worker count (threads are cheap to keep, slow to start)."""
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="spikeroll-kernel")
    return _POOLS[workers]
