"""Events -> frames: (T, 2, 34, 34) uint8 per recording, batch-vectorized.

Time axis: by default T equal bins over 0 .. the recording's last timestamp (the last bin is
closed on the right, so the last event lands in bin T-1). With `window_us`, each bin spans a
fixed window and T = ceil(duration / window_us), where for a batch the duration is the longest
recording (or `total_us`; load_dataset passes the nominal 315 ms so every dataset and split gets
the same T, events past it land in the last bin). With `first_saccade`,
only events with t < 105 ms are kept and the duration is taken as exactly 105 ms.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from spikeroll.data.events import SACCADE_US, SENSOR, concat
from spikeroll.errors import SpikerollError

_PIX = SENSOR * SENSOR  # pixels per polarity plane
_T_SHIFT = np.int64(1) << 32  # key = cell * 2**32 + t; timestamps must stay below 2**31


@dataclass(frozen=True)
class BinOpts:
    """How recordings become frames (see the module docstring): `time_bins` equal bins, or bins of
    `window_us` each; `first_saccade` keeps the first 105 ms only; `denoise` drops isolated events
    (`denoise_mask`, window `denoise_us`); `binary` stores 0/1 per bin instead of event counts."""

    time_bins: int = 10
    window_us: int | None = None
    first_saccade: bool = False
    denoise: bool = False
    binary: bool = True
    denoise_us: int = 5000

    def __post_init__(self):
        if self.window_us is None and self.time_bins < 1:
            raise SpikerollError(f"time_bins must be >= 1, got {self.time_bins}; pass a positive number of bins")
        if self.window_us is not None and self.window_us <= 0:
            raise SpikerollError(f"window_us must be > 0, got {self.window_us}; "
                                 "pass a positive bin width in microseconds")

    def key(self) -> dict:
        """The options as a plain dict (part of a dataset cache's key)."""
        return asdict(self)


def denoise_mask(events: np.ndarray, sample: np.ndarray | None = None, window_us: int = 5000) -> np.ndarray:
    """Keep-mask of a background-activity filter: an event survives when at least one *other* event
    (any polarity, same sample) fired in its 3x3 pixel neighbourhood within window_us before it
    (0 <= t_i - t_j <= window_us). Exact and vectorized over sorted (cell, t) keys."""
    n = len(events)
    if n == 0:
        return np.zeros(0, bool)
    t = events["t"].astype(np.int64)
    if t.max() >= 2**31 or t.min() < 0:
        raise SpikerollError("timestamps outside 0..2**31 us cannot be denoised; check the recording")
    s = np.zeros(n, np.int64) if sample is None else sample.astype(np.int64)
    w = SENSOR + 2  # pad the grid by one pixel so neighbour offsets never wrap into another row/sample
    cell = (s * w + events["y"].astype(np.int64) + 1) * w + events["x"].astype(np.int64) + 1
    order = np.argsort(cell * _T_SHIFT + t)
    keys = (cell * _T_SHIFT + t)[order]
    # keys closer than window_us belong to the same cell (cells are 2**32 apart), so the
    # own pixel needs no search: look at the sorted neighbours (ties support each other)
    gap = np.diff(keys)
    ok = np.zeros(n, bool)
    ok[1:] |= gap <= window_us
    ok[:-1] |= gap == 0
    for dy, dx in ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)):
        todo = np.flatnonzero(~ok)  # only events still unsupported are searched again
        if len(todo) == 0:
            break
        q = keys[todo] + (dy * w + dx) * _T_SHIFT
        r = np.searchsorted(keys, q, "right") - 1  # latest event at the neighbour cell up to t
        ok[todo[(r >= 0) & (keys[np.maximum(r, 0)] >= q - window_us)]] = True
    keep = np.empty(n, bool)
    keep[order] = ok
    return keep


def n_bins(opts: BinOpts, total_us: int) -> int:
    """Number of time bins for a batch whose longest recording lasts total_us."""
    if opts.window_us is None:
        return opts.time_bins
    total = SACCADE_US if opts.first_saccade else total_us
    return max(1, -(-int(total) // opts.window_us))


def durations(events: np.ndarray, sample: np.ndarray, n: int) -> np.ndarray:
    """Last timestamp of each of n samples (0 for an empty sample)."""
    d = np.zeros(n, np.int64)
    t = events["t"]
    step = np.diff(sample)
    if np.all(step >= 0) and np.all((np.diff(t) >= 0) | (step > 0)):  # grouped, time-sorted: fast path
        last = np.flatnonzero(np.append(step > 0, len(t) > 0))  # last event of every sample
        d[sample[last]] = t[last]
    else:
        np.maximum.at(d, sample, t)
    return d


def bin_concat(events: np.ndarray, sample: np.ndarray, n: int, opts: BinOpts = BinOpts(),
               total_us: int | None = None) -> np.ndarray:
    """Bin concatenated events (sample = recording index per event, non-decreasing, as concat
    makes it) into (n, T, 2, 34, 34) uint8. total_us fixes T in window mode (default: the
    longest recording of this batch)."""
    dur = durations(events, sample, n)  # before filtering: denoise must not shift the time axis
    if opts.first_saccade:
        keep = events["t"] < SACCADE_US
        events, sample = events[keep], sample[keep]
        dur[:] = SACCADE_US
    if opts.denoise:
        keep = denoise_mask(events, sample, opts.denoise_us)
        events, sample = events[keep], sample[keep]
    T = n_bins(opts, int(dur.max(initial=0)) if total_us is None else total_us)
    t = events["t"].astype(np.int64)
    if opts.window_us is None:
        b = t * T // np.maximum(dur[sample], 1)
    else:
        b = t // opts.window_us
    b = np.minimum(b, T - 1)
    flat = (((sample * T + b) * 2 + events["p"]) * SENSOR + events["y"]) * SENSOR + events["x"]
    out = np.zeros(n * T * 2 * _PIX, np.uint8)
    if opts.binary:
        out[flat] = 1  # no counting needed: plain scatter
    else:
        # bincount in sample chunks keeps the int64 count buffer small; saturate at 255
        step = max(1, (1 << 24) // (T * 2 * _PIX))
        cut = np.searchsorted(sample, np.arange(0, n + step, step)) if n else [0, 0]
        size = T * 2 * _PIX
        for i, (lo, hi) in enumerate(zip(cut[:-1], cut[1:])):
            base = i * step * size
            cnt = np.bincount(flat[lo:hi] - base, minlength=min(step, n - i * step) * size)
            out[base:base + len(cnt)] = np.minimum(cnt, 255)
    return out.reshape(n, T, 2, SENSOR, SENSOR)


def bin_batch(recordings: list[np.ndarray], opts: BinOpts = BinOpts(), total_us: int | None = None) -> np.ndarray:
    """Bin a list of recordings into (N, T, 2, 34, 34) uint8 with one vectorized pass."""
    events, sample = concat(recordings)
    return bin_concat(events, sample, len(recordings), opts, total_us)


def bin_events(events: np.ndarray, opts: BinOpts = BinOpts(), **kw) -> np.ndarray:
    """Bin one recording into (T, 2, 34, 34) uint8. Keyword args override fields of opts."""
    if kw:
        opts = BinOpts(**{**opts.key(), **kw})
    return bin_batch([events], opts)[0]
