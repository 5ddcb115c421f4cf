"""Summary statistics of event recordings (events per sample, polarity, timing, per-class counts)."""
from __future__ import annotations

import numpy as np

from spikeroll.data.events import SACCADE_US, concat
from spikeroll.data.recordings import load_recordings


class StatsAccumulator:
    """Accumulates per-recording summaries chunk by chunk, so huge datasets never sit in memory."""

    def __init__(self):
        self.counts, self.durations, self.labels = [], [], []
        self.on = 0
        self.windows = np.zeros(3, np.int64)

    def add(self, events: np.ndarray, sample: np.ndarray, n: int, labels=None) -> None:
        """Count one chunk of n recordings: `events` with each event's recording index in `sample`."""
        self.counts.append(np.bincount(sample, minlength=n))
        dur = np.zeros(n, np.int64)
        np.maximum.at(dur, sample, events["t"])
        self.durations.append(dur)
        self.on += int(events["p"].sum())
        # saccade windows 0-105, 105-210, 210+ ms (late events count to the third)
        self.windows += np.bincount(np.minimum(events["t"] // SACCADE_US, 2), minlength=3)[:3]
        if labels is not None:
            self.labels.append(np.asarray(labels))

    def result(self) -> dict:
        """The statistics of every chunk added so far, as a JSON-ready dict."""
        c = np.concatenate(self.counts) if self.counts else np.zeros(0, np.int64)
        d = np.concatenate(self.durations) / 1000 if self.durations else np.zeros(0)
        total = max(int(c.sum()), 1)
        out = {
            "samples": int(c.size),
            "events_per_sample": _mmm(c),
            "on_fraction": self.on / total,
            "length_ms": _mmm(d),
            "saccade_share": [float(v) for v in self.windows / total],
        }
        if self.labels:
            lab = np.concatenate(self.labels)
            out["class_counts"] = {int(k): int(v) for k, v in zip(*np.unique(lab, return_counts=True))}
        return out


def _mmm(a: np.ndarray) -> dict:
    if a.size == 0:
        return {"mean": 0.0, "min": 0.0, "max": 0.0}
    return {"mean": float(a.mean()), "min": float(a.min()), "max": float(a.max())}


def recording_stats(recordings: list[np.ndarray], labels=None) -> dict:
    """Statistics of a list of recordings (see StatsAccumulator.result for the keys)."""
    acc = StatsAccumulator()
    ev, s = concat(recordings)
    acc.add(ev, s, len(recordings), labels)
    return acc.result()


def dataset_stats(name: str, data_dir: str | None = None, images: str | None = None) -> dict:
    """Per-class counts, events per sample (mean/min/max), ON fraction, recording length in ms
    (mean/min/max) and the share of events in each 105 ms saccade window, over all splits."""
    acc = StatsAccumulator()
    for ev, s, n, labels, _ in load_recordings(name, data_dir, images=images):
        acc.add(ev, s, n, labels)
    return {"dataset": name, **acc.result()}


def format_stats(stats: dict) -> str:
    """A human-readable summary of dataset_stats' result."""
    e, length = stats["events_per_sample"], stats["length_ms"]
    lines = [
        f"dataset            {stats['dataset']} ({stats['samples']} recordings)",
        f"events per sample  mean {e['mean']:.0f}, min {e['min']:.0f}, max {e['max']:.0f}",
        f"ON fraction        {stats['on_fraction']:.3f}",
        f"length (ms)        mean {length['mean']:.1f}, min {length['min']:.1f}, max {length['max']:.1f}",
        "saccade share      " + " / ".join(f"{share:.3f}" for share in stats["saccade_share"])
        + "   (events in 0-105, 105-210, 210+ ms)",
    ]
    if "class_counts" in stats:
        lines.append("class counts       " + "  ".join(f"{k}:{v}" for k, v in stats["class_counts"].items()))
    return "\n".join(lines)
