"""Compare real N-MNIST recordings with simulated saccades of real MNIST images.

Usage: python benchmarks/calibrate_simulator.py [--n 1000] [--contrast C] [--log-eps E] [--noise-hz H]
Reads ../shared/data (nmnist-subset, mnist-t10k) relative to the repo root; prints a table of
events/sample, ON fraction, share of events per 105 ms saccade window, mean event position,
and border noise rate for real vs simulated data.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

from spikeroll.data.events import SACCADE_US, concat
from spikeroll.data.images import load_images
from spikeroll.data.nmnist import read_recordings, scan_folder
from spikeroll.data.saccade import DEFAULTS, simulate_saccades
from spikeroll.data.stats import recording_stats

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def profile(recs):
    st = recording_stats(recs)
    ev, _ = concat(recs)
    w = np.minimum(ev["t"] // SACCADE_US, 2)
    border = (ev["x"] < 3) | (ev["y"] < 3)  # columns/rows the digit never reaches: noise only
    border_px = 34 * 34 - 31 * 31
    return {
        "events/sample": st["events_per_sample"]["mean"],
        "ON fraction": st["on_fraction"],
        **{f"share saccade {k + 1}": st["saccade_share"][k] for k in range(3)},
        **{f"mean x sacc {k + 1}": ev["x"][w == k].mean() for k in range(3)},
        **{f"mean y sacc {k + 1}": ev["y"][w == k].mean() for k in range(3)},
        "noise Hz/pixel": border.sum() / len(recs) / border_px / (st["length_ms"]["mean"] / 1000),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000, help="MNIST images to simulate")
    ap.add_argument("--contrast", type=float, default=DEFAULTS["contrast"])
    ap.add_argument("--log-eps", type=float, default=DEFAULTS["log_eps"])
    ap.add_argument("--noise-hz", type=float, default=DEFAULTS["noise_hz"])
    ap.add_argument("--origin", type=int, nargs=2, default=DEFAULTS["origin"])
    a = ap.parse_args()
    if not (DATA / "nmnist-subset").exists():
        sys.exit(f"no shared data at {DATA}; calibration needs the real N-MNIST subset")
    files, _ = scan_folder(DATA / "nmnist-subset" / "Train")
    real, _ = read_recordings(files, strict=True)
    imgs, _ = load_images(DATA / "mnist-t10k" / "t10k-images-idx3-ubyte.gz")
    t0 = time.time()
    sim = simulate_saccades(imgs[:a.n], contrast=a.contrast, log_eps=a.log_eps, noise_hz=a.noise_hz,
                            origin=tuple(a.origin))
    print(f"simulated {a.n} images in {time.time() - t0:.1f} s  (contrast={a.contrast} log_eps={a.log_eps} "
          f"noise_hz={a.noise_hz} origin={tuple(a.origin)})")
    r, s = profile(real), profile(sim)
    print(f"{'metric':<18}{'real':>10}{'sim':>10}{'sim/real':>10}")
    for k in r:
        print(f"{k:<18}{r[k]:>10.3f}{s[k]:>10.3f}{s[k] / r[k]:>10.2f}")


if __name__ == "__main__":
    main()
