"""Raw recordings of a dataset, chunk by chunk, before binning (for statistics and inspection)."""

from __future__ import annotations

from spikeroll.config import DATASETS
from spikeroll.data.digits import digit_recordings
from spikeroll.data.nmnist import iter_nmnist_recordings
from spikeroll.data.simulated import iter_sim_recordings
from spikeroll.errors import SpikerollError


def load_recordings(name: str, data_dir: str | None = None, *, images: str | None = None,
                    strict: bool = False, progress: bool = False):
    """Raw recordings, chunk by chunk: yields (events, sample index, n, labels, split name).
    Simulated datasets are generated in chunks so that memory stays bounded."""
    if name not in DATASETS:
        raise SpikerollError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if name == "digits":
        ev, s, labels = digit_recordings(progress)
        yield ev, s, len(labels), labels, "all"
    elif name == "nmnist":
        yield from iter_nmnist_recordings(data_dir, strict=strict, progress=progress)
    else:
        yield from iter_sim_recordings(images or data_dir, progress=progress)
