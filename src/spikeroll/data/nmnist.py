"""Real N-MNIST on disk: folder scanning and fast bulk reading."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeroll.data.nmnist_format import read_nmnist_bin


def scan_folder(split_dir: Path):
    files = sorted(Path(split_dir).glob("[0-9]/*.bin"))
    return files, np.array([int(f.parent.name) for f in files]), []


def read_recordings(files):
    return [read_nmnist_bin(f) for f in files]
