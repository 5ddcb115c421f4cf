"""The one atomic writer and the one frame-cache round trip."""

import os
import stat

import numpy as np
import pytest
import torch

from spikeroll.atomic import FILE_MODE, atomic_write
from spikeroll.data import cache
from spikeroll.errors import SpikerollError
from spikeroll.training.rundir import load_checkpoint, save_checkpoint


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    atomic_write(path, lambda h: h.write(b"old"))
    assert path.read_bytes() == b"old"

    def torn(h):
        h.write(b"half of the new")
        raise KeyboardInterrupt  # killed mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, torn)
    assert path.read_bytes() == b"old" and sorted(p.name for p in path.parent.iterdir()) == ["f.bin"]


def test_checkpoint_goes_through_the_atomic_writer(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"generation": 3})
    assert torch.load(tmp_path / "c.pt", weights_only=True) == {"generation": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    # not the layout Trainer.checkpoint writes: refused, naming the file and what is missing
    with pytest.raises(SpikerollError, match=r"c\.pt: key\(s\) 'format', 'config'.*are missing"):
        load_checkpoint(tmp_path / "c.pt")


def test_atomic_write_follows_the_umask(tmp_path):
    """mkstemp makes 0o600 files; an atomically written file gets what open() would give it."""
    old = os.umask(0o027)
    try:
        with open(tmp_path / "plain", "wb"):
            pass
    finally:
        os.umask(old)
    atomic_write(tmp_path / "atomic", lambda h: h.write(b"x"))
    assert stat.S_IMODE((tmp_path / "atomic").stat().st_mode) == FILE_MODE == 0o666 & ~old
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o640  # what the umask alone gives


@pytest.mark.parametrize("binary", [True, False])
def test_cached_frames_round_trip_and_file_layout(tmp_path, binary):
    rng = np.random.default_rng(0)
    frames = (rng.random((5, 3, 2, 4, 4)) < 0.3).astype(np.uint8) * (1 if binary else 7)
    built = []

    def build():
        built.append(1)
        return {"frames": frames, "train_frames": frames[:2], "labels": np.arange(5)}, {"note": "x"}

    path = tmp_path / "e.npz"
    first, meta, hit = cache.cached_frames(path, binary, build)
    again, meta2, hit2 = cache.cached_frames(path, binary, build)
    assert (hit, hit2, len(built)) == (False, True, 1) and meta2["note"] == "x"
    assert sorted(again) == ["frames", "labels", "train_frames"]
    for got in (first, again):
        np.testing.assert_array_equal(got["frames"], frames)
        np.testing.assert_array_equal(got["train_frames"], frames[:2])
        np.testing.assert_array_equal(got["labels"], np.arange(5))
    # the layout earlier caches were written in: bit-packed rows (8 pixels a byte) and a shape beside each
    with np.load(path) as z:
        assert set(z.files) == {"frames", "shape", "train_frames", "train_shape", "labels", "__meta__"}
        assert z["shape"].tolist() == [5, 3, 2, 4, 4] and z["train_shape"].tolist() == [2, 3, 2, 4, 4]
        per = 3 * 2 * 4 * 4
        assert z["frames"].shape == ((5, per // 8) if binary else (5, 3, 2, 4, 4))
