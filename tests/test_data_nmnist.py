"""Part B: the N-MNIST binary format, folder loading with bad-file handling, stats, real subset."""
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeroll.data import bin_events, dataset_stats, load_dataset, make_events, read_nmnist_bin, write_nmnist_bin
from spikeroll.data.nmnist import Problems, read_files, scan_folder
from spikeroll.errors import SpikerollError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def pack(x, y, p, t):
    """One 5-byte record, packed by hand: x, y, then p<<23 | t as 24 big-endian bits."""
    return struct.pack(">BB", x, y) + struct.pack(">I", p << 23 | t)[1:]


def test_decode_hand_packed_file_with_overflow(tmp_path):
    raw = pack(1, 2, 1, 10) + pack(33, 0, 0, 2**23 - 1) + pack(0, 240, 0, 0) + pack(5, 33, 1, 7) + pack(0, 240, 0, 0) \
        + pack(6, 7, 0, 0x7FFFFF)
    assert len(raw) == 30 and raw[:5] == bytes([1, 2, 0x80, 0x00, 0x0A])
    f = tmp_path / "a.bin"
    f.write_bytes(raw)
    ev = read_nmnist_bin(f)
    assert ev["x"].tolist() == [1, 33, 5, 6] and ev["y"].tolist() == [2, 0, 33, 7]
    assert ev["p"].tolist() == [1, 0, 1, 0]
    assert ev["t"].tolist() == [10, 2**23 - 1, 2**23 + 7, 2 * 2**23 + 0x7FFFFF]
    # the bulk reader decodes the same file identically, also when it is not the first of a chunk
    g = tmp_path / "b.bin"
    g.write_bytes(pack(3, 3, 0, 5) + pack(0, 240, 0, 0) + pack(4, 4, 1, 1))
    bulk, fid, ok = read_files([g, f, g], Problems(strict=True))
    assert ok.all() and np.array_equal(bulk[fid == 1], ev)
    assert bulk[fid == 2]["t"].tolist() == [5, 2**23 + 1]  # overflow count restarts per file


def test_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    t = np.sort(rng.integers(0, 3 * 2**23 + 5, 500))
    t[-1] = 2**24  # exactly on an overflow boundary
    ev = make_events(rng.integers(0, 34, 500), rng.integers(0, 34, 500), rng.integers(0, 2, 500), t)
    write_nmnist_bin(tmp_path / "r.bin", ev)
    raw = np.fromfile(tmp_path / "r.bin", np.uint8).reshape(-1, 5)
    assert (raw[:, 1] == 240).sum() == t[-1] >> 23  # one marker per crossed multiple of 2**23
    np.testing.assert_array_equal(read_nmnist_bin(tmp_path / "r.bin"), ev)


def fake_root(tmp_path, n_per_class=3, test=True):
    rng = np.random.default_rng(1)
    for split in ("Train", "Test") if test else ("Train",):
        for lab in range(10):
            d = tmp_path / split / str(lab)
            d.mkdir(parents=True)
            for i in range(n_per_class):
                n = 50 + 10 * lab
                ev = make_events(rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n),
                                 np.sort(rng.integers(0, 300_000, n)))
                write_nmnist_bin(d / f"{lab}{i:04d}.bin", ev)
    return tmp_path


def add_bad_files(root):
    (root / "Train" / "3" / "trunc.bin").write_bytes(b"\x01\x02\x03\x04\x05\x06\x07")
    (root / "Train" / "4" / "xy.bin").write_bytes(pack(40, 2, 1, 10))
    (root / "Train" / "5" / "empty.bin").write_bytes(b"")
    (root / "Train" / "5" / "only_marker.bin").write_bytes(pack(0, 240, 0, 0))
    (root / "Train" / "cats").mkdir()
    (root / "Train" / "cats" / "c.bin").write_bytes(pack(1, 1, 1, 1))
    (root / "Train" / "loose.bin").write_bytes(pack(1, 1, 1, 1))


def test_load_fake_root_with_test_split(tmp_path):
    root = fake_root(tmp_path / "d")
    sp = load_dataset("nmnist", str(root), cache_dir=tmp_path / "c", progress=False, val_fraction=0.34, seed=3)
    assert len(sp.train) + len(sp.val) == 30 and len(sp.test) == 30 and sp.info["skipped"] == 0
    assert sp.train.frames.shape[1:] == (10, 2, 34, 34) and sp.test.labels.bincount().tolist() == [3] * 10
    assert sp.classes == 10 and sp.sensor_size == (34, 34, 2)  # tonic's NMNIST: 10 classes, (34, 34, 2)
    again = load_dataset("nmnist", str(root), cache_dir=tmp_path / "c", progress=False, val_fraction=0.34, seed=3)
    assert torch.equal(again.val.labels, sp.val.labels) and torch.equal(again.val.frames, sp.val.frames)
    other = load_dataset("nmnist", str(root), cache_dir=tmp_path / "c", progress=False, val_fraction=0.34, seed=4)
    assert not torch.equal(other.val.frames, sp.val.frames)
    # the frames match a direct read and binning of the file
    first = read_nmnist_bin(root / "Test" / "0" / "00000.bin")
    assert torch.equal(sp.test.frames[0], torch.from_numpy(bin_events(first)))


def test_val_ids_choose_validation_by_recording_id(tmp_path):
    root = fake_root(tmp_path / "d", test=False)  # file <label><i:04d>.bin has id label*10000 + i
    (root / "Train" / "4" / "40001.bin").write_bytes(b"\x01\x02\x03")  # unreadable: skipped
    with pytest.warns(UserWarning, match="40001.bin"):
        sp = load_dataset("nmnist", str(root), cache_dir=tmp_path / "c", progress=False, val_ids="40000-40002,70002")
    assert len(sp.val) == 3 and len(sp.train) == 26 and sp.val.labels.tolist() == [4, 4, 7]
    for frames, name in zip(sp.val.frames, ("4/40000", "4/40002", "7/70002")):  # ids stay aligned past the bad file
        assert torch.equal(frames, torch.from_numpy(bin_events(read_nmnist_bin(root / "Train" / f"{name}.bin"))))
    assert "ids 40000-40002,70002" in sp.info["split"]
    for bad, message in (("801-1000", "selects no recording"), ("0-99999", "selects every recording"),
                         ("9-1", "not a list of recording id ranges"), ("a-b", "not a list")):
        with pytest.raises(SpikerollError, match=message):
            load_dataset("nmnist", str(root), cache_dir=tmp_path / "c", progress=False, val_ids=bad)
    with pytest.raises(SpikerollError, match="use --val-fraction"):
        load_dataset("digits", val_ids="1-10")


def test_bad_files_skipped_and_counted_or_strict(tmp_path):
    root = fake_root(tmp_path / "d", test=False)
    add_bad_files(root)
    with pytest.warns(UserWarning) as rec:
        sp = load_dataset("nmnist", str(root), cache_dir=tmp_path / "c", progress=False)
    assert sp.test is None and len(sp.train) + len(sp.val) == 30
    assert sp.info["skipped"] == 6
    text = " ".join(str(w.message) for w in rec)
    for name in ("trunc.bin", "xy.bin", "empty.bin", "only_marker.bin", "cats", "loose.bin"):
        assert name in text
    with pytest.warns(UserWarning):  # the cached load repeats the warnings and the count
        assert load_dataset("nmnist", str(root), cache_dir=tmp_path / "c", progress=False).info["skipped"] == 6
    with pytest.raises(SpikerollError, match=r"(trunc|xy|empty|only_marker|cats|loose)"):
        load_dataset("nmnist", str(root), cache_dir=tmp_path / "c", progress=False, strict=True)


def test_root_errors(tmp_path):
    with pytest.raises(SpikerollError, match="--data-dir"):
        load_dataset("nmnist", None)
    with pytest.raises(SpikerollError, match="does not exist"):
        load_dataset("nmnist", str(tmp_path / "nope"))
    try:
        import tonic  # noqa: F401
    except ImportError:
        with pytest.raises(SpikerollError, match=r"pip install 'spikeroll\[datasets\]'"):
            load_dataset("nmnist", str(tmp_path))


def test_stats_on_fake_root(tmp_path):
    root = fake_root(tmp_path, n_per_class=2)
    st = dataset_stats("nmnist", str(root))
    assert st["samples"] == 40 and st["class_counts"] == {k: 4 for k in range(10)}
    assert st["events_per_sample"]["min"] == 50 and st["events_per_sample"]["max"] == 140
    assert abs(sum(st["saccade_share"]) - 1) < 1e-9 and 0.3 < st["on_fraction"] < 0.7


@pytest.fixture(scope="module")
def subset():
    root = SHARED / "nmnist-subset"
    if not (root / "Train").is_dir():
        pytest.skip(f"shared N-MNIST subset not found at {root}")
    return root


def test_shared_subset_stats(subset):
    files, labels = scan_folder(subset / "Train")
    assert len(files) == 1000 and np.bincount(labels).tolist() == [97, 116, 99, 93, 105, 92, 94, 117, 87, 100]
    st = dataset_stats("nmnist", str(subset))
    assert st["samples"] == 1000 and 4000 < st["events_per_sample"]["mean"] < 4250
    assert abs(st["on_fraction"] - 0.5) < 0.02 and 290 < st["length_ms"]["mean"] < 320
    ev, fid, ok = read_files(files, Problems(strict=True))
    assert ok.all() and ev["x"].max() < 34 and ev["y"].max() < 34


def test_shared_subset_load_and_warm_cache(subset, tmp_path):
    sp = load_dataset("nmnist", str(subset), cache_dir=tmp_path, progress=False, val_fraction=0.2, seed=0)
    assert len(sp.train) == 800 or len(sp.train) + len(sp.val) == 1000
    assert sp.test is None and sp.train.frames.shape[1:] == (10, 2, 34, 34)
    warm = load_dataset("nmnist", str(subset), cache_dir=tmp_path, progress=False, val_fraction=0.2, seed=0)
    assert warm.info["skipped"] == 0 and torch.equal(warm.train.frames, sp.train.frames)
    # the split the issue suggests: ids 1-800 train, 801-1000 validate (the subset holds MNIST ids 1-1000)
    by_id = load_dataset("nmnist", str(subset), cache_dir=tmp_path, progress=False, val_ids="801-1000")
    assert len(by_id.train) == 800 and len(by_id.val) == 200
