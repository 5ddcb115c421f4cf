"""On-disk cache of binned frames: one .npz per parameter set, written atomically, with a digest.

The file name hashes every parameter that affects the content (plus FORMAT_VERSION), so a
changed option never reads stale frames. Each array's SHA-256 digest (of its dtype, shape and
bytes) is stored beside it; a file that fails to load or to verify is reported with a warning and
rebuilt. Files are read with allow_pickle=False, so a cache file can hold arrays only, never code.

The cache folder (SPIKEROLL_CACHE, or spikeroll.cachedir's default) is trusted as the user's own:
the digest catches damage (a torn write, a flipped bit, a file from another version), not an
attacker who can write there, who could as well write a matching digest. Do not point the cache
at a folder others can write to.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from spikeroll.atomic import atomic_write
from spikeroll.cachedir import cache_root

# 2: simulator polarity follows the real N-MNIST recordings; 3: SHA-256 digests instead of CRC32
FORMAT_VERSION = 3
_META = "__meta__"


def cache_path(kind: str, params: dict, cache_dir=None) -> Path:
    """The cache file of `kind` built with `params`: its name hashes them and FORMAT_VERSION."""
    blob = json.dumps({"format": FORMAT_VERSION, "kind": kind, **params}, sort_keys=True, default=str)
    return cache_root(cache_dir) / f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:20]}.npz"


def digest(a: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes (hex)."""
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).view(np.uint8).reshape(-1).data)
    return h.hexdigest()


def save(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write arrays + JSON meta to path atomically (spikeroll.atomic).
    A cache that cannot be written (read-only folder, full disk) only costs a warning."""
    meta = {**meta, "sha256": {k: digest(v) for k, v in arrays.items()}}
    blob = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    try:
        atomic_write(path, lambda f: np.savez(f, **arrays, **{_META: blob}))
    except OSError as e:
        warnings.warn(f"could not write cache file {path} ({e.strerror or e}); set SPIKEROLL_CACHE to a "
                      "writable folder to make the next load fast", stacklevel=3)


def load(path: Path) -> tuple[dict[str, np.ndarray], dict] | None:
    """Arrays and meta from path; None when absent; None plus a warning when corrupt."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z[_META].tobytes())
            arrays = {k: z[k] for k in z.files if k != _META}
        sums = meta["sha256"]
        if set(arrays) != set(sums) or any(digest(v) != sums[k] for k, v in arrays.items()):
            raise ValueError("SHA-256 digest mismatch")
        return arrays, meta
    except Exception as e:  # any damage at all: rebuild rather than trust
        warnings.warn(f"cache file {path} is corrupt ({type(e).__name__}: {e}); rebuilding it", stacklevel=3)
        return None


def cached_frames(path: Path, binary: bool, build: Callable[[], tuple[dict[str, np.ndarray], dict]]
                  ) -> tuple[dict[str, np.ndarray], dict, bool]:
    """The frame-cache round trip: (arrays, meta, hit) from the entry at path, or from build() ->
    (arrays, meta), which is then stored there. Every array named "frames" or "<split>_frames" is
    frames (N, T, 2, H, W), bit-packed on disk when binary, its shape stored beside it as "shape" or
    "<split>_shape"; other arrays (labels, ids) are stored as they are. The arrays returned hold the
    frames unpacked, the shapes dropped."""
    hit = load(path)
    if hit is not None:
        stored, meta = hit
        arrays = {}
        for name, a in stored.items():
            if name.endswith("frames"):
                arrays[name] = unpack_frames(a, tuple(stored[_shape_key(name)]), binary)
            elif not (name.endswith("shape") and f"{name[:-len('shape')]}frames" in stored):
                arrays[name] = a
        return arrays, meta, True
    arrays, meta = build()
    stored = {}
    for name, a in arrays.items():
        if name.endswith("frames"):
            stored[name] = pack_frames(a, binary)
            stored[_shape_key(name)] = np.array(a.shape, np.int64)
        else:
            stored[name] = a
    save(path, stored, meta)
    return arrays, meta, False


def _shape_key(frames_key: str) -> str:
    return f"{frames_key[:-len('frames')]}shape"  # "frames" -> "shape", "train_frames" -> "train_shape"


def pack_frames(frames: np.ndarray, binary: bool) -> np.ndarray:
    """Bit-pack 0/1 frames (8x smaller on disk); counts are stored as they are."""
    return np.packbits(frames.reshape(len(frames), int(np.prod(frames.shape[1:]))), axis=1) if binary else frames


def unpack_frames(stored: np.ndarray, shape: tuple, binary: bool) -> np.ndarray:
    """The frames of `shape` that pack_frames stored."""
    if not binary:
        return stored.reshape(shape)
    per = int(np.prod(shape[1:]))
    return np.unpackbits(stored, axis=1, count=per).reshape(shape)
