"""N-MNIST-style saccade simulator: grayscale images -> DVS event recordings.

N-MNIST (Orchard et al. 2015) filmed MNIST digits on a monitor with an ATIS camera moved along
three 105 ms saccades tracing a triangle. Here the digit (scaled to 28x28) sits at `origin` in
the 34x34 sensor and is shifted by (0,0)->(3.5,7)->(7,0)->(0,0) px (x, y), linearly in time,
with bilinear sub-pixel interpolation. Each pixel keeps a reference log-intensity; whenever
log(I + log_eps) moves k contrast thresholds away from it, k events fire (ON for increases) and
the reference follows. Crossing times are interpolated inside the time step, then jittered.
Uniform background noise events are added. All images are simulated together, step by step.
"""
from __future__ import annotations

import numpy as np
import torch

from spikeroll.data.events import EVENT_DTYPE, SACCADE_US, SENSOR, split

# Calibrated against the real N-MNIST subset with benchmarks/calibrate_simulator.py.
DEFAULTS = dict(contrast=0.5, contrast_sigma=0.1, log_eps=0.1, noise_hz=0.35, jitter_us=300.0,
                dt_us=1000, origin=(-1, 1))
_PATH = np.array([[0.0, 0.0], [3.5, 7.0], [7.0, 0.0], [0.0, 0.0]])  # triangle vertices (x, y) px
_PAD = 8  # canvas margin: shifts go up to 7 px, plus one pixel for bilinear interpolation


def to_mnist_size(images: np.ndarray, size: int = 28, margin: int = 0) -> np.ndarray:
    """Scale (N,H,W) images to [0,1] floats of shape (N,size,size); the content is resized to
    size-2*margin (bilinear when enlarging, area-averaging when shrinking) and zero-padded."""
    x = torch.as_tensor(np.asarray(images, np.float32))[:, None]
    inner = size - 2 * margin
    if x.shape[-2:] != (inner, inner):
        mode = "area" if x.shape[-1] > inner else "bilinear"
        kw = {} if mode == "area" else {"align_corners": False}
        x = torch.nn.functional.interpolate(x, size=(inner, inner), mode=mode, **kw)
    x = torch.nn.functional.pad(x, (margin,) * 4)[:, 0].numpy()
    hi = x.max(axis=(1, 2), keepdims=True)
    return np.clip(x / np.where(hi > 0, hi, 1), 0, 1)  # per-image normalisation: monitor full scale


def saccade_offset(t_us: np.ndarray) -> np.ndarray:
    """(x, y) shift in pixels at times t_us along the three-saccade triangle (clamped at the ends)."""
    s = np.clip(np.asarray(t_us, float) / SACCADE_US, 0, 3)
    return np.stack([np.interp(s, [0, 1, 2, 3], _PATH[:, k]) for k in (0, 1)], -1)


def simulate_concat(images: np.ndarray, *, seed: int = 0, contrast: float = DEFAULTS["contrast"],
                    contrast_sigma: float = DEFAULTS["contrast_sigma"], log_eps: float = DEFAULTS["log_eps"], noise_hz: float = DEFAULTS["noise_hz"],
                    jitter_us: float = DEFAULTS["jitter_us"], dt_us: int = DEFAULTS["dt_us"],
                    origin: tuple[int, int] = DEFAULTS["origin"], size: int = 28, margin: int = 0,
                    progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Simulate N images -> (events, sample index), grouped by sample and sorted by t within each.
    contrast_sigma is the relative per-pixel spread of the threshold (DVS pixel mismatch);
    noise_hz is the random-event rate per pixel (both polarities together)."""
    rng = np.random.default_rng(seed)
    img = to_mnist_size(images, size, margin)
    n = len(img)
    canvas = np.zeros((n, SENSOR + 2 * _PAD, SENSOR + 2 * _PAD), np.float32)
    oy, ox = _PAD + origin[1], _PAD + origin[0]
    h, w = min(size, canvas.shape[1] - oy), min(size, canvas.shape[2] - ox)
    canvas[:, oy:oy + h, ox:ox + w] = img[:, :h, :w]

    # Preallocated buffers: the dense per-step work is a handful of in-place passes over
    # (n, 34, 34) float32; only pixels that crossed a threshold are touched individually.
    rows = np.empty((n, SENSOR + 1, SENSOR), np.float32)
    cur, diff, absd = np.empty((3, n, SENSOR, SENSOR), np.float32)
    mask = np.empty((n, SENSOR, SENSOR), bool)
    # per-pixel thresholds, floored so a badly matched pixel cannot fire without bound
    thr = contrast * (1 + contrast_sigma * rng.standard_normal((n, SENSOR, SENSOR))).astype(np.float32)
    thr = np.maximum(thr, np.float32(0.2 * contrast))
    thr_flat = thr.reshape(-1)

    def log_frame(t, out):  # sensor log-intensity with the digit shifted by saccade_offset(t)
        dx, dy = saccade_offset(t)
        ix, iy = int(np.floor(dx)), int(np.floor(dy))
        fx, fy = np.float32(dx - ix), np.float32(dy - iy)
        y0, x0 = _PAD - iy, _PAD - ix  # sensor pixel X reads image pixel X - dx (bilinear, separable)
        np.multiply(canvas[:, y0 - 1:y0 + SENSOR, x0:x0 + SENSOR], 1 - fx, out=rows)
        np.add(rows, fx * canvas[:, y0 - 1:y0 + SENSOR, x0 - 1:x0 - 1 + SENSOR], out=rows)
        np.multiply(rows[:, 1:], 1 - fy, out=out)
        out += fy * rows[:, :-1]
        out += np.float32(log_eps)
        return np.log(out, out=out)

    total = 3 * SACCADE_US
    times = np.arange(0, total + 1, dt_us)
    prev = log_frame(0, np.empty((n, SENSOR, SENSOR), np.float32))
    ref = prev.copy()
    chunks = []
    steps = range(1, len(times))
    if progress:
        from tqdm import tqdm
        steps = tqdm(steps, desc="simulating saccades", unit="step", leave=False)
    for k in steps:
        log_frame(times[k], cur)
        np.subtract(cur, ref, out=diff)
        np.greater_equal(np.abs(diff, out=absd), thr, out=mask)
        idx = np.flatnonzero(mask)
        if len(idx):
            d, r0, th = diff.reshape(-1)[idx], ref.reshape(-1)[idx], thr_flat[idx]
            c = (np.abs(d) // th).astype(np.int64)
            sign = np.where(d > 0, np.float32(1), np.float32(-1))
            ref.reshape(-1)[idx] = r0 + sign * c * th
            # k-th crossing of this step for each emitted event: 1..c via a grouped arange
            rep = np.repeat(np.arange(len(c)), c)
            kth = np.arange(len(rep)) - np.repeat(np.cumsum(c) - c, c) + 1
            level = r0[rep] + sign[rep] * kth * th[rep]
            l0, l1 = prev.reshape(-1)[idx][rep], cur.reshape(-1)[idx][rep]
            frac = np.clip((level - l0) / np.where(l1 != l0, l1 - l0, 1), 0, 1)
            s, yx = np.divmod(idx[rep], SENSOR * SENSOR)
            y, x = np.divmod(yx, SENSOR)
            chunks.append((s, x, y, (sign[rep] > 0).astype(np.uint8), times[k - 1] + frac * dt_us))
        prev, cur = cur, prev
    # background noise: Poisson count per sample, uniform in space, polarity and time
    m = rng.poisson(noise_hz * SENSOR * SENSOR * total / 1e6, n)
    nm = int(m.sum())
    chunks.append((np.repeat(np.arange(n), m), rng.integers(0, SENSOR, nm), rng.integers(0, SENSOR, nm),
                   rng.integers(0, 2, nm).astype(np.uint8), rng.uniform(0, total, nm)))
    s, x, y, p, t = (np.concatenate(a) for a in zip(*chunks))
    t = np.clip(np.rint(t + rng.normal(0, jitter_us, len(t))), 0, total - 1).astype(np.int64)
    order = np.argsort(s.astype(np.int64) * (1 << 32) + t, kind="stable")
    ev = np.empty(len(order), EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"], ev["t"] = x[order], y[order], p[order], t[order]
    return ev, s[order].astype(np.int64)


def simulate_saccades(images: np.ndarray, **kw) -> list[np.ndarray]:
    """Simulate N images -> list of N recordings (see simulate_concat for the parameters)."""
    ev, s = simulate_concat(images, **kw)
    return split(ev, s, len(images))
