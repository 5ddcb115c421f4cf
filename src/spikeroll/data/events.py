"""Event recordings: one numpy structured array per recording, sorted by timestamp.

A recording is an array of EVENT_DTYPE (x, y, p, t). Batches of recordings are handled as one
concatenated array plus a per-event sample index, so that every batch operation is a single
vectorized numpy call instead of a Python loop over recordings.
"""
from __future__ import annotations

import numpy as np

SENSOR = 34  # N-MNIST sensor: 34 x 34 pixels, 2 polarities
SENSOR_SIZE = (SENSOR, SENSOR, 2)  # tonic's convention: (width, height, polarities)
SACCADE_US = 105_000  # each of N-MNIST's three saccades lasts 105 ms
RECORDING_US = 3 * SACCADE_US  # nominal recording length; fixes T in window mode for whole datasets
EVENT_DTYPE = np.dtype([("x", "u1"), ("y", "u1"), ("p", "u1"), ("t", "i8")])


def make_events(x, y, p, t) -> np.ndarray:
    """Build a recording from coordinate arrays; sorts by t (stable, so ties keep their order)."""
    ev = np.empty(len(t), dtype=EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"], ev["t"] = x, y, p, t
    if len(ev) > 1 and np.any(np.diff(ev["t"]) < 0):
        ev = ev[np.argsort(ev["t"], kind="stable")]
    return ev


def concat(recordings: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate recordings into (events, sample_index) with sample_index int64 per event."""
    lengths = np.fromiter((len(r) for r in recordings), dtype=np.int64, count=len(recordings))
    events = np.concatenate(recordings) if recordings else np.empty(0, EVENT_DTYPE)
    return events, np.repeat(np.arange(len(recordings), dtype=np.int64), lengths)


def split(events: np.ndarray, sample: np.ndarray, n: int) -> list[np.ndarray]:
    """Inverse of concat: split events (grouped by ascending sample index) into n recordings."""
    order = np.argsort(sample, kind="stable")  # no-op copy when already grouped
    bounds = np.searchsorted(sample[order], np.arange(1, n))
    return np.split(events[order], bounds)
