"""Part A: events, binning (against a brute-force reference), the saccade simulator, the cache,
and the embedded digits dataset."""
import math

import numpy as np
import pytest
import torch

from spikeroll.data import DATASETS, BinOpts, bin_batch, bin_events, cache, denoise_mask, load_dataset, make_events
from spikeroll.data.saccade import simulate_concat, simulate_saccades
from spikeroll.data.splits import cached_splits, stratified_split
from spikeroll.errors import SpikerollError


def tiny_recordings():
    rng = np.random.default_rng(3)
    recs = []
    for n, tmax in ((40, 300_000), (25, 120_000), (1, 0), (60, 315_000)):
        t = np.sort(rng.integers(0, tmax + 1, n))
        # cluster coordinates so the denoise filter has both isolated and supported events
        recs.append(make_events(rng.integers(0, 5, n) * 7 % 34, rng.integers(0, 4, n), rng.integers(0, 2, n), t))
    recs[0]["t"][-1] = 300_000  # the last timestamp sits exactly on the right edge
    recs.insert(2, make_events([], [], [], []))  # an empty recording gives empty frames
    return recs


def brute_denoise(ev, dt=5000):
    keep = []
    for i in range(len(ev)):
        keep.append(any(j != i and abs(int(ev["x"][j]) - int(ev["x"][i])) <= 1
                        and abs(int(ev["y"][j]) - int(ev["y"][i])) <= 1
                        and 0 <= ev["t"][i] - ev["t"][j] <= dt for j in range(len(ev))))
    return np.array(keep, bool)


def brute_bin(ev, opts, total_us):
    """Reference binning: one Python loop over events."""
    dur = int(ev["t"].max()) if len(ev) else 0
    if opts.first_saccade:
        ev, dur, total_us = ev[ev["t"] < 105_000], 105_000, 105_000
    if opts.denoise:
        ev = ev[brute_denoise(ev)]
    T = opts.time_bins if opts.window_us is None else max(1, math.ceil(total_us / opts.window_us))
    out = np.zeros((T, 2, 34, 34), np.int64)
    for x, y, p, t in ev:
        b = t * T // max(dur, 1) if opts.window_us is None else t // opts.window_us
        out[min(b, T - 1), p, y, x] += 1
    return np.minimum(out, 1 if opts.binary else 255).astype(np.uint8)


@pytest.mark.parametrize("opts", [
    BinOpts(), BinOpts(time_bins=7, binary=False), BinOpts(window_us=20_000), BinOpts(window_us=30_000, binary=False),
    BinOpts(first_saccade=True, time_bins=5, binary=False), BinOpts(denoise=True, binary=False),
    BinOpts(first_saccade=True, window_us=10_000, denoise=True),
])
def test_binning_matches_brute_force(opts):
    recs = tiny_recordings()
    frames = bin_batch(recs, opts)
    total = max(int(r["t"].max(initial=0)) for r in recs)
    assert frames.dtype == np.uint8 and frames.shape[0] == len(recs)
    for r, f in zip(recs, frames):
        np.testing.assert_array_equal(f, brute_bin(r, opts, total))
    if opts.window_us is None:  # single-recording entry point agrees with the batch one
        np.testing.assert_array_equal(bin_events(recs[0], opts), frames[0])


def test_counts_saturate_at_255():
    ev = make_events(np.zeros(300), np.zeros(300), np.ones(300), np.arange(300))
    assert bin_events(ev, time_bins=1, binary=False)[0, 1, 0, 0] == 255


def test_denoise_matches_brute_force():
    for r in tiny_recordings():
        np.testing.assert_array_equal(denoise_mask(r), brute_denoise(r))


def square_image(lo=6, hi=22):
    img = np.zeros((1, 28, 28), np.float32)
    img[0, lo:hi, lo:hi] = 1.0
    return img


def test_simulator_square_edges_and_polarity():
    ox, oy = 0, 0
    ev = simulate_saccades(square_image(), noise_hz=0.0, origin=(ox, oy), seed=1)[0]
    x, y, p, t = (ev[k].astype(np.int64) for k in "xypt")
    assert len(ev) > 100 and x.max() < 34 and y.max() < 34
    assert np.all(np.diff(t) >= 0) and t.min() >= 0 and t.max() < 315_000
    u, v = x - ox, y - oy  # image coordinates at zero shift
    # the square spans 6..21; shifts are 0..7 px: pixels always inside or far outside never fire
    assert not np.any((u >= 15) & (u <= 20) & (v >= 15) & (v <= 20))
    assert not np.any((u < 5) | (v < 5) | (u > 30) | (v > 30))
    # N-MNIST's convention, measured on real recordings: ON on the trailing edge of the motion
    s1 = t < 105_000  # first saccade moves right and down: ON on the trailing (left/top) edges
    assert x[s1 & (p == 1)].mean() < x[s1 & (p == 0)].mean() - 3
    assert y[s1 & (p == 1)].mean() < y[s1 & (p == 0)].mean() - 3
    s3 = t >= 210_000  # third saccade moves left: ON on the right edge
    assert x[s3 & (p == 1)].mean() > x[s3 & (p == 0)].mean() + 3
    assert abs(p.mean() - 0.5) < 0.1


def test_simulator_deterministic_and_noise():
    rng = np.random.default_rng(0)
    imgs = rng.random((5, 8, 8))
    a, sa = simulate_concat(imgs, seed=4)
    b, sb = simulate_concat(imgs, seed=4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sa, sb)
    assert not np.array_equal(simulate_concat(imgs, seed=5)[0], a)
    blank = simulate_saccades(np.zeros((200, 28, 28)), noise_hz=1.0)  # noise only: ~1156*0.315 each
    assert abs(np.mean([len(r) for r in blank]) - 34 * 34 * 0.315) < 20


def test_stratified_split_partitions():
    labels = np.repeat(np.arange(10), 50)
    parts = stratified_split(labels, (0.7, 0.15, 0.15), 1)
    allidx = np.concatenate(parts)
    assert sorted(allidx.tolist()) == list(range(500))
    assert [len(p) for p in parts] == [350, 80, 70] or sum(map(len, parts)) == 500
    assert all(np.array_equal(a, b) for a, b in zip(parts, stratified_split(labels, (0.7, 0.15, 0.15), 1)))


def test_corrupt_cache_is_rebuilt(tmp_path):
    calls = []

    def build():
        calls.append(1)
        f = np.arange(4 * 2 * 2 * 34 * 34).reshape(4, 2, 2, 34, 34) % 2
        return {"train": (f.astype(np.uint8), [0, 1, 0, 1]), "val": (f[:2].astype(np.uint8), [1, 0]), "test": None}, {}

    declared = dict(classes=2, sensor_size=(34, 34, 2))
    a = cached_splits("x", "x", {"k": 1}, tmp_path, True, build, **declared)
    b = cached_splits("x", "x", {"k": 1}, tmp_path, True, build, **declared)
    assert len(calls) == 1 and b.info["from_cache"] and b.test is None and b.classes == 2
    assert torch.equal(a.train.frames, b.train.frames)
    path = cache.cache_path("x", {"k": 1}, tmp_path)
    raw = bytearray(path.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 64] = b"\xaa" * 64  # damage the middle of the file
    path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="corrupt"):
        c = cached_splits("x", "x", {"k": 1}, tmp_path, True, build, **declared)
    assert len(calls) == 2 and torch.equal(a.train.frames, c.train.frames)
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="corrupt"):
        cached_splits("x", "x", {"k": 1}, tmp_path, True, build, **declared)
    assert not list(tmp_path.glob("*.tmp"))  # no temp files left behind


def test_unwritable_cache_only_warns(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    build = lambda: ({"train": (np.zeros((2, 1, 2, 34, 34), np.uint8), [0, 1]), "val": None, "test": None}, {})
    with pytest.warns(UserWarning, match="could not write cache"):
        sp = cached_splits("x", "x", {}, blocker / "sub", True, build, classes=2, sensor_size=(34, 34, 2))
    assert len(sp.train) == 2 and sp.val is None


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return load_dataset("digits", cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


def test_digits_shapes_and_labels(digits):
    assert digits.name == "digits" and "digits" in DATASETS
    sizes = [len(digits.train), len(digits.val), len(digits.test)]
    assert sum(sizes) == 1797 and sizes == [1258, 270, 269]
    for s in (digits.train, digits.val, digits.test):
        assert s.frames.dtype == torch.uint8 and s.labels.dtype == torch.int64
        assert s.frames.shape[1:] == (10, 2, 34, 34) and s.frames.shape[0] == len(s.labels)
        assert s.frames.max() == 1 and 0 <= s.labels.min() and s.labels.max() == 9
        assert len(s.labels.unique()) == 10
    assert "stratified" in digits.info["split"]
    from sklearn.datasets import load_digits
    assert digits.classes == len(load_digits().target_names) == 10
    # tonic's order (width, height, polarities) against the frames' (N, T, polarities, height, width)
    assert digits.sensor_size == (34, 34, 2) == tuple(digits.train.frames.shape[:-4:-1])
    idx = [set(digits.info["indices"][k]) for k in ("train", "val", "test")]
    assert not (idx[0] & idx[1] or idx[0] & idx[2] or idx[1] & idx[2]) and len(set.union(*idx)) == 1797


def test_digits_cached_and_deterministic(digits, tmp_path):
    cdir = digits.info["cache"].rsplit("/", 1)[0]
    again = load_dataset("digits", cache_dir=cdir, seed=7, progress=False)  # fixed split: seed-independent
    assert again.info["from_cache"]
    for a, b in ((digits.train, again.train), (digits.test, again.test)):
        assert torch.equal(a.frames, b.frames) and torch.equal(a.labels, b.labels)
    # every binning option is part of the cache key
    options = (BinOpts(), BinOpts(binary=False), BinOpts(denoise=True), BinOpts(first_saccade=True),
               BinOpts(time_bins=11))
    keys = {cache.cache_path("digits", {"bin": o.key()}, cdir) for o in options}
    assert len(keys) == 5


def test_unknown_dataset_names_valid_ones():
    with pytest.raises(SpikerollError, match="digits, nmnist, nmnist-sim"):
        load_dataset("cifar")
