"""Split / Splits containers, deterministic splitting, and the cached-build helper."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from spikeroll.data import cache

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class Split:
    """One split of a dataset: frames and their labels, index-aligned."""

    frames: torch.Tensor  # uint8 (N, T, 2, 34, 34): counts or 0/1 per bin, polarity (0=OFF,1=ON), y, x
    labels: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Splits:
    """A dataset's splits, and what it declares about itself, tonic-style: `classes` (the readout
    size: labels lie in 0..classes-1) and `sensor_size` (width, height, polarities), the order of
    tonic's `Dataset.sensor_size`; every split's frames are (N, T, polarities, height, width)."""
    name: str
    train: Split
    val: Split
    test: Split | None  # None when the dataset has no test split
    info: dict = field(default_factory=dict)
    classes: int = field(kw_only=True)
    sensor_size: tuple[int, int, int] = field(kw_only=True)


def stratified_split(labels: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Partition indices into len(fractions) parts, class by class, in a seeded random order.
    Each class is cut at rounded cumulative fractions, so every part keeps the class balance."""
    rng = np.random.default_rng(seed)
    parts = [[] for _ in fractions]
    edges = np.cumsum((0.0,) + tuple(fractions))
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cuts = np.rint(edges * len(idx)).astype(int)
        for i in range(len(fractions)):
            parts[i].append(idx[cuts[i]:cuts[i + 1]])
    return [np.sort(np.concatenate(p)) for p in parts]


def cached_splits(name: str, kind: str, params: dict, cache_dir, binary: bool,
                  build: Callable[[], tuple[dict, dict]], *, classes: int, sensor_size: tuple) -> Splits:
    """Load Splits from the cache entry for params, or call build() -> ({split: (frames, labels)
    or None}, info), store the result, and return it."""
    path = cache.cache_path(kind, params, cache_dir)

    def build_arrays():
        parts, info = build()
        arrays = {}
        for s, part in parts.items():
            if part is not None:
                arrays[f"{s}_frames"], arrays[f"{s}_labels"] = part[0], np.asarray(part[1], np.int64)
        return arrays, {"info": info, "binary": binary}

    arrays, meta, hit = cache.cached_frames(path, binary, build_arrays)
    info = {**meta["info"], "cache": str(path), "from_cache": hit}
    out = {}
    for s in SPLIT_NAMES:
        if f"{s}_frames" not in arrays:
            out[s] = None
            continue
        frames = np.ascontiguousarray(arrays[f"{s}_frames"])
        out[s] = Split(torch.from_numpy(frames), torch.from_numpy(arrays[f"{s}_labels"]))
    return Splits(name, out["train"], out["val"], out["test"], info, classes=classes, sensor_size=sensor_size)
