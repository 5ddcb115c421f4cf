"""Time reading + binning the 1,000 shared N-MNIST recordings, cold and from a warm cache.

Usage: python benchmarks/data_load.py [--repeat 3]
Reads ../shared/data/nmnist-subset relative to the repo root; uses a throwaway cache folder.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

from spikeroll.data import BinOpts, bin_concat, load_dataset
from spikeroll.data.nmnist import Problems, read_files, scan_folder

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "nmnist-subset"


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    a = ap.parse_args()
    if not (ROOT / "Train").is_dir():
        sys.exit(f"no N-MNIST subset at {ROOT}")
    files, _ = scan_folder(ROOT / "Train")
    best = lambda fn: min(timed(fn)[1] for _ in range(a.repeat))
    (ev, fid, ok), _ = timed(lambda: read_files(files, Problems(strict=True)))
    print(f"{len(files)} recordings, {len(ev):,} events")
    print(f"read + decode           {best(lambda: read_files(files, Problems(strict=True))):7.3f} s")
    print(f"bin (10 bins, binary)   {best(lambda: bin_concat(ev, fid, len(files), BinOpts())):7.3f} s")
    counts = BinOpts(binary=False, denoise=True)
    print(f"bin (counts + denoise)  {best(lambda: bin_concat(ev, fid, len(files), counts)):7.3f} s")
    cold, warm = [], []
    for _ in range(a.repeat):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(timed(lambda: load_dataset("nmnist", str(ROOT), cache_dir=cache, progress=False))[1])
            warm.append(timed(lambda: load_dataset("nmnist", str(ROOT), cache_dir=cache, progress=False))[1])
    print(f"load_dataset cold cache {min(cold):7.3f} s  (read, bin, write cache)")
    print(f"load_dataset warm cache {min(warm):7.3f} s")


if __name__ == "__main__":
    main()
