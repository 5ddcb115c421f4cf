"""Part C: image sources (IDX / PNG), the nmnist-sim dataset, and the simulator calibration."""
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeroll.data import load_dataset
from spikeroll.data.images import load_images
from spikeroll.data.saccade import simulate_concat, simulate_saccades
from spikeroll.data.stats import recording_stats
from spikeroll.errors import SpikerollError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_idx(path, arr, magic, gz):
    raw = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def digit_like(n, seed=0):
    rng = np.random.default_rng(seed)
    imgs = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):  # a bright bar of random size in the MNIST 20x20 box
        y, x = rng.integers(4, 14, 2)
        imgs[i, y:y + rng.integers(4, 10), x:x + rng.integers(2, 10)] = 255
    return imgs, np.arange(n) % 10


@pytest.mark.parametrize("gz", [True, False])
def test_idx_images_and_sibling_labels(tmp_path, gz):
    imgs, labels = digit_like(12)
    ext = ".gz" if gz else ""
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{ext}", imgs, 2051, gz)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{ext}", labels, 2049, gz)
    got, lab = load_images(tmp_path / f"t10k-images-idx3-ubyte{ext}")
    assert np.array_equal(got, imgs) and lab.tolist() == labels.tolist() and lab.dtype == np.int64


def test_idx_errors(tmp_path):
    imgs, labels = digit_like(12)
    write_idx(tmp_path / "a-images-idx3-ubyte", imgs, 2049, False)  # wrong magic
    with pytest.raises(SpikerollError, match="magic 2051"):
        load_images(tmp_path / "a-images-idx3-ubyte")
    write_idx(tmp_path / "b-images-idx3-ubyte", imgs, 2051, False)
    with pytest.raises(SpikerollError, match="labels"):  # no labels file beside it
        load_images(tmp_path / "b-images-idx3-ubyte")
    write_idx(tmp_path / "b-labels-idx1-ubyte", labels[:5], 2049, False)
    with pytest.raises(SpikerollError, match="12 images but its labels file 5"):
        load_images(tmp_path / "b-images-idx3-ubyte")
    with pytest.raises(SpikerollError, match="does not exist"):
        load_images(tmp_path / "missing.gz")
    with pytest.raises(SpikerollError, match="--images"):
        load_dataset("nmnist-sim")


def test_png_folder(tmp_path):
    Image = pytest.importorskip("PIL.Image")  # optional for the product
    imgs, labels = digit_like(6)
    for i, (im, lab) in enumerate(zip(imgs, labels)):
        (tmp_path / str(lab)).mkdir(exist_ok=True)
        Image.fromarray(im).save(tmp_path / str(lab) / f"{i}.png")
    got, lab = load_images(tmp_path)
    assert got.shape == (6, 28, 28) and sorted(lab.tolist()) == sorted(labels.tolist())
    order = np.argsort(labels, kind="stable")
    assert np.array_equal(got, imgs[order])


def test_chunked_simulation_equals_one_call():
    imgs = np.random.default_rng(2).random((200, 8, 8))
    whole, s = simulate_concat(imgs, seed=3)
    a, sa = simulate_concat(imgs[:128], seed=3)
    b, sb = simulate_concat(imgs[128:], seed=3, index_offset=128)
    np.testing.assert_array_equal(whole, np.concatenate([a, b]))
    np.testing.assert_array_equal(s, np.concatenate([sa, sb + 128]))


def test_nmnist_sim_dataset(tmp_path):
    imgs, labels = digit_like(40)
    write_idx(tmp_path / "x-images-idx3-ubyte.gz", imgs, 2051, True)
    write_idx(tmp_path / "x-labels-idx1-ubyte.gz", labels, 2049, True)
    kw = dict(images=str(tmp_path / "x-images-idx3-ubyte.gz"), cache_dir=tmp_path / "c", progress=False,
              val_fraction=0.25)
    sp = load_dataset("nmnist-sim", **kw)
    assert len(sp.train) + len(sp.val) == 36 and 8 <= len(sp.val) <= 10 and len(sp.test) == 4
    assert sp.test.labels.tolist() == labels[36:].tolist()
    assert sp.train.frames.shape[1:] == (10, 2, 34, 34) and sp.train.frames.dtype == torch.uint8
    assert sp.classes == 10 and sp.sensor_size == (34, 34, 2)
    again = load_dataset("nmnist-sim", **kw)
    assert again.info["from_cache"] and torch.equal(again.test.frames, sp.test.frames)
    other = load_dataset("nmnist-sim", **{**kw, "seed": 5})
    assert torch.equal(other.test.frames, sp.test.frames)  # fixed holdout
    assert not torch.equal(other.val.frames, sp.val.frames)  # validation follows the run seed


def test_nmnist_sim_classes_cover_labels_past_nine(tmp_path):
    imgs, _ = digit_like(10)
    labels = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 11])  # e.g. PNG folders 0..8 and 11: twelve outputs
    write_idx(tmp_path / "x-images-idx3-ubyte", imgs, 2051, False)
    write_idx(tmp_path / "x-labels-idx1-ubyte", labels, 2049, False)
    sp = load_dataset("nmnist-sim", images=str(tmp_path / "x-images-idx3-ubyte"), cache_dir=tmp_path / "c",
                      progress=False)
    assert sp.classes == 12


def test_simulator_matches_real_nmnist_within_10_percent():
    mnist = SHARED / "mnist-t10k" / "t10k-images-idx3-ubyte.gz"
    real_root = SHARED / "nmnist-subset" / "Train"
    if not (mnist.exists() and real_root.is_dir()):
        pytest.skip(f"shared MNIST / N-MNIST data not found under {SHARED}")
    from spikeroll.data.nmnist import read_recordings, scan_folder
    real_recs, ok = read_recordings(scan_folder(real_root)[0], strict=True)
    real = recording_stats(real_recs)
    imgs, _ = load_images(mnist)
    sim = recording_stats(simulate_saccades(imgs[:256], seed=0))
    assert abs(sim["on_fraction"] / real["on_fraction"] - 1) < 0.1
    assert abs(sim["events_per_sample"]["mean"] / real["events_per_sample"]["mean"] - 1) < 0.1
    for a, b in zip(sim["saccade_share"], real["saccade_share"]):
        assert abs(a / b - 1) < 0.1

    def on_minus_off_position(recordings):
        """Mean x+y of ON minus OFF events in the first saccade (the digit drifts towards +x,+y)."""
        ev = np.concatenate([r[r["t"] < 105_000] for r in recordings])
        pos = ev["x"].astype(float) + ev["y"]
        return pos[ev["p"] == 1].mean() - pos[ev["p"] == 0].mean()
    real_side = on_minus_off_position(real_recs[:256])
    sim_side = on_minus_off_position(simulate_saccades(imgs[:256], seed=0))
    assert real_side < -2 and sim_side < -2  # both: ON events on the trailing edge
