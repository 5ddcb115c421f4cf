"""Real N-MNIST on disk: ROOT/Train/<label>/<id>.bin and ROOT/Test/<label>/<id>.bin.

Files are decoded many at a time: the raw bytes of a chunk of files
are joined and decoded by one vectorized pass (per-file overflow counts and validity checks via
the file index of every record). Bad files are skipped with a warning naming each one and counted
in Splits.info["skipped"], or raise SpikerollError when strict. Binned frames of each folder are
cached under a key of the binning options and the file list (paths, sizes, mtimes).
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from spikeroll.data import cache
from spikeroll.data.binning import BinOpts, bin_concat
from spikeroll.data.events import EVENT_DTYPE, RECORDING_US, SENSOR, SENSOR_SIZE, split
from spikeroll.data.nmnist_format import OVERFLOW_Y
from spikeroll.data.splits import Split, Splits, stratified_split
from spikeroll.errors import SpikerollError

CLASSES = 10  # label folders are the single digits 0-9
_CHUNK_FILES = 2000  # files decoded together: bounds memory for the full 70k-file dataset
_MAX_NAMED = 20  # individual warnings before the rest are only counted


class Problems:
    """Collects bad files: warn per file (up to _MAX_NAMED) or raise at once when strict."""

    def __init__(self, strict: bool):
        self.strict, self.items = strict, []

    def add(self, path, reason: str) -> None:
        """Record a bad file (a warning naming it), or raise at once when strict."""
        if self.strict:
            raise SpikerollError(f"bad N-MNIST file {path}: {reason}; fix or remove it, "
                                 "or run without --strict to skip it")
        self.items.append(f"{path}: {reason}")
        if len(self.items) <= _MAX_NAMED:
            warnings.warn(f"skipping {path}: {reason} (skipped so far: {len(self.items)})", stacklevel=2)

    def summary(self) -> None:
        """Warn with the total when more bad files were found than were named one by one."""
        if len(self.items) > _MAX_NAMED:
            warnings.warn(f"skipped {len(self.items)} bad N-MNIST files in total (first {_MAX_NAMED} named above)",
                          stacklevel=2)


def find_root(data_dir) -> Path:
    """The folder holding Train/ (and maybe Test/): data_dir itself or tonic's data_dir/NMNIST.
    Downloads with tonic when data_dir exists but holds neither."""
    if data_dir is None:
        raise SpikerollError("the nmnist dataset needs --data-dir pointing at a folder with Train/ and Test/")
    root = Path(data_dir).expanduser().resolve()
    if not root.is_dir():
        raise SpikerollError(f"N-MNIST folder {root} does not exist; pass --data-dir with Train/<label>/*.bin "
                             "(and Test/), or an existing empty folder to download into")
    for cand in (root, root / "NMNIST"):
        if (cand / "Train").is_dir() or (cand / "Test").is_dir():
            return cand
    _download(root)
    return root / "NMNIST"


def _download(root: Path) -> None:
    try:
        import tonic
    except ImportError:
        raise SpikerollError(f"no Train/ or Test/ under {root}; pip install 'spikeroll[datasets]' to download "
                             "N-MNIST automatically, or unpack the official Train/ and Test/ folders there") from None
    try:
        for train in (True, False):
            tonic.datasets.NMNIST(save_to=str(root), train=train)
    except OSError as e:  # URLError is an OSError: no network, DNS failure, refused connection
        raise SpikerollError(f"could not download N-MNIST into {root} (no network?): {e}") from None
    if not (root / "NMNIST" / "Train").is_dir():
        raise SpikerollError(f"tonic finished but {root / 'NMNIST' / 'Train'} is missing; "
                             "unpack Train/ and Test/ there")


def scan_folder(split_dir: Path, problems: Problems | None = None) -> tuple[list[Path], np.ndarray]:
    """Sorted .bin files under split_dir/<digit>/ and their labels; bad folders go to problems."""
    problems = problems or Problems(strict=False)
    files, labels = [], []
    try:
        entries = sorted(os.scandir(split_dir), key=lambda e: e.name)
    except OSError as e:
        raise SpikerollError(f"cannot read {split_dir}: {e.strerror}; check the path and its permissions") from None
    for e in entries:
        if not e.is_dir():
            if e.name.endswith(".bin"):
                problems.add(e.path, "not inside a <label>/ folder, so its label is unknown")
            continue
        if not (len(e.name) == 1 and e.name.isdigit()):
            problems.add(e.path, "label folder name is not a digit 0-9")
            continue
        try:
            names = sorted(f.name for f in os.scandir(e.path) if f.name.endswith(".bin"))
        except OSError as err:
            problems.add(e.path, f"unreadable label folder ({err.strerror})")
            continue
        files += [Path(e.path) / n for n in names]
        labels += [int(e.name)] * len(names)
    missing = sorted(set(range(CLASSES)) - set(labels))
    if files and missing:
        warnings.warn(f"{split_dir} has no recordings for labels {missing}", stacklevel=2)
    return files, np.array(labels, np.int64)


def _read(path: Path):
    try:
        return path.read_bytes()
    except OSError as e:
        return e


def read_files(files: list[Path], problems: Problems) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read and decode files -> (events, sample index into files, ok mask over files)."""
    raws = [_read(f) for f in files]  # serial: faster than a thread pool for local, cached files
    ok = np.ones(len(files), bool)
    for i, r in enumerate(raws):
        if isinstance(r, OSError):
            problems.add(files[i], f"unreadable ({r.strerror or r})")
            ok[i] = False
        elif len(r) % 5:
            problems.add(files[i], f"size {len(r)} bytes is not a multiple of 5 (truncated or not N-MNIST)")
            ok[i] = False
    good = np.flatnonzero(ok)
    rec = np.frombuffer(b"".join(raws[i] for i in good), np.uint8).reshape(-1, 5)
    fid = np.repeat(good, [len(raws[i]) // 5 for i in good])
    ts = np.zeros((len(rec), 4), np.uint8)  # bytes 2..4 as a big-endian 24-bit number, minus bit 23
    ts[:, 1:] = rec[:, 2:]
    ts[:, 1] &= 0x7F
    t = ts.view(">u4")[:, 0].astype(np.int64)
    marks = np.flatnonzero(rec[:, 1] == OVERFLOW_Y)
    if len(marks):  # overflow markers (rare): count the file's earlier markers, drop the markers
        first = np.searchsorted(fid, fid)  # first record of each record's file
        rows = np.arange(len(rec))
        t += (np.searchsorted(marks, rows) - np.searchsorted(marks, first)) << 23
        keep = np.ones(len(rec), bool)
        keep[marks] = False
        rec, t, fid = rec[keep], t[keep], fid[keep]
    n_ev = np.bincount(fid, minlength=len(files))
    for i in good[n_ev[good] == 0]:
        problems.add(files[i], "empty recording (no events)")
        ok[i] = False
    for i in np.unique(fid[(rec[:, 0] >= SENSOR) | (rec[:, 1] >= SENSOR)]):
        problems.add(files[i], f"coordinates outside the {SENSOR}x{SENSOR} sensor (not an N-MNIST file?)")
        ok[i] = False
    if not ok[good].all():
        keep = ok[fid]
        rec, t, fid = rec[keep], t[keep], fid[keep]
    ev = np.empty(len(t), EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"], ev["t"] = rec[:, 0], rec[:, 1], rec[:, 2] >> 7, t
    if np.any((np.diff(t) < 0) & (np.diff(fid) == 0)):  # rare: restore time order within a file
        order = np.lexsort((t, fid))
        ev, fid = ev[order], fid[order]
    return ev, fid, ok


def read_recordings(files: list[Path], strict: bool = False) -> tuple[list[np.ndarray], np.ndarray]:
    """Read files -> (recordings of the good files, ok mask over files); bad files are skipped
    with a warning, or raise SpikerollError when strict."""
    problems = Problems(strict)
    ev, fid, ok = read_files(files, problems)
    problems.summary()
    recs = split(ev, fid, len(files))
    return [r for r, good in zip(recs, ok) if good], ok


def iter_chunks(files, labels, problems: Problems, progress: bool = False):
    """Yield (events, sample index 0..n-1, n, labels, ok mask) per chunk of files."""
    starts = range(0, len(files), _CHUNK_FILES)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc="reading N-MNIST", unit="chunk", leave=False)
    for a in starts:
        ev, fid, ok = read_files(files[a:a + _CHUNK_FILES], problems)
        remap = np.cumsum(ok) - 1  # sample index among the good files of this chunk
        yield ev, remap[fid], int(ok.sum()), labels[a:a + _CHUNK_FILES][ok], ok


def iter_nmnist_recordings(data_dir, strict: bool = False, progress: bool = False):
    """Raw recordings of every split folder: yields (events, sample, n, labels, split name)."""
    root = find_root(data_dir)
    problems = Problems(strict)
    for name in ("Train", "Test"):
        if (root / name).is_dir():
            files, labels = scan_folder(root / name, problems)
            for ev, s, n, lab, _ in iter_chunks(files, labels, problems, progress):
                yield ev, s, n, lab, name.lower()
    problems.summary()


def file_list_hash(files: list[Path]) -> str:
    """A digest of the file list (paths, sizes, modification times): the cache key of a folder."""
    h = hashlib.sha256()
    for f in files:
        try:
            st = f.stat()
        except OSError as e:
            raise SpikerollError(f"cannot read {f} ({e.strerror or e}); was the folder changed while "
                                 "reading it?") from None
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def recording_ids(files: list[Path]) -> np.ndarray:
    """Each file's recording id, the number its name carries (`00801.bin` -> 801); -1 if none."""
    return np.array([int(f.stem) if f.stem.isdigit() else -1 for f in files], np.int64)


def load_folder(split_dir: Path, opts: BinOpts, strict: bool, cache_dir, progress: bool):
    """(frames uint8 (N,T,2,34,34), labels, recording ids, skipped-file list, cache path) of one
    folder, through the cache."""
    scan_problems = Problems(strict)
    files, labels = scan_folder(split_dir, scan_problems)
    params = {"bin": opts.key(), "files": file_list_hash(files), "strict": strict, "nominal_us": RECORDING_US,
              "scan_problems": scan_problems.items, "ids": True}
    path = cache.cache_path("nmnist", params, cache_dir)

    def build():
        problems = Problems(strict)
        problems.items = list(scan_problems.items)
        frames, labs, readable = [], [], []
        for ev, s, n, lab, ok in iter_chunks(files, labels, problems, progress):
            frames.append(bin_concat(ev, s, n, opts, total_us=RECORDING_US))
            labs.append(lab)
            readable.append(ok)
        problems.summary()
        if not sum(len(lab) for lab in labs):  # nothing to train or test on: say why, once
            found = f"all {len(files)} recordings are corrupt or unreadable" if files else "there are no recordings"
            examples = "; ".join(problems.items[:1])
            raise SpikerollError(f"{split_dir}: {found} (N-MNIST needs <label>/<id>.bin files, 5 bytes per event)"
                                 + (f", e.g. {examples}" if examples else "") + "; check --data-dir")
        T = frames[0].shape[1] if frames else opts.time_bins
        frames = np.concatenate(frames) if frames else np.zeros((0, T, 2, SENSOR, SENSOR), np.uint8)
        ids = recording_ids(files)[np.concatenate(readable)] if readable else np.zeros(0, np.int64)
        return ({"frames": frames, "labels": np.concatenate(labs) if labs else np.zeros(0, np.int64), "ids": ids},
                {"skipped": problems.items})

    arrays, meta, hit = cache.cached_frames(path, opts.binary, build)
    if hit:
        for item in meta["skipped"][len(scan_problems.items):]:  # repeat the file warnings on a cache hit
            warnings.warn(f"skipping {item}", stacklevel=2)
    return arrays["frames"], arrays["labels"], arrays["ids"], meta["skipped"], path


def parse_id_ranges(text: str) -> list[tuple[int, int]]:
    """'801-1000' or '1-100,901-1000' -> inclusive (first, last) id ranges."""
    ranges = []
    for part in text.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        last = last or first  # a single id
        if not (first.isdigit() and last.isdigit()) or int(first) > int(last):
            raise SpikerollError(f"--val-ids {text!r} is not a list of recording id ranges; try --val-ids 801-1000")
        ranges.append((int(first), int(last)))
    return ranges


def id_split(ids: np.ndarray, text: str, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices: recordings whose id lies in one of the ranges of `text` validate."""
    val = np.zeros(len(ids), bool)
    for first, last in parse_id_ranges(text):
        val |= (ids >= first) & (ids <= last)
    if not val.any() or val.all():
        side = "no" if not val.any() else "every"
        raise SpikerollError(f"--val-ids {text} selects {side} recording of {folder} (ids {ids.min()}-{ids.max()}); "
                             "choose ranges that leave recordings on both sides")
    return np.flatnonzero(~val), np.flatnonzero(val)


def load_nmnist_splits(data_dir, opts: BinOpts, *, val_fraction: float = 0.2, seed: int = 0, strict: bool = False,
                       cache_dir=None, progress: bool = True, val_ids: str | None = None) -> Splits:
    """Train/ split into train and validation (a stratified, seeded `val_fraction`, or the
    recordings whose ids lie in `val_ids`, e.g. '801-1000'), and Test/ when present."""
    root = find_root(data_dir)
    if not (root / "Train").is_dir():
        raise SpikerollError(f"{root} has no Train/ folder; N-MNIST needs Train/<label>/*.bin for training")
    frames, labels, ids, skipped, path = load_folder(root / "Train", opts, strict, cache_dir, progress)
    if len(labels) < 2:
        raise SpikerollError(f"{root / 'Train'} holds {len(labels)} readable recordings; at least 2 are needed")
    if val_ids:
        tr, va = id_split(ids, val_ids, root / "Train")
        how = f"validation = Train recordings with ids {val_ids}"
    else:
        tr, va = stratified_split(labels, (1 - val_fraction, val_fraction), seed)
        how = f"validation = stratified {val_fraction:.0%} of Train (seed {seed})"
    as_split = lambda f, l: Split(torch.from_numpy(np.ascontiguousarray(f)), torch.from_numpy(l))
    info = {"root": str(root), "cache": {"Train": str(path)}, "skipped_files": list(skipped),
            "split": f"{how}: {len(tr)} train / {len(va)} val; "}
    test = None
    if (root / "Test").is_dir():
        tf, tl, _, tskip, tpath = load_folder(root / "Test", opts, strict, cache_dir, progress)
        test = as_split(tf, tl)
        info["cache"]["Test"] = str(tpath)
        info["skipped_files"] += tskip
        info["split"] += f"test = Test/ ({len(tl)})"
    else:
        info["split"] += "no Test/ folder, so no test split"
    info["skipped"] = len(info["skipped_files"])
    info["time_bins"] = int(frames.shape[1])
    return Splits("nmnist", as_split(frames[tr], labels[tr]), as_split(frames[va], labels[va]), test, info,
                  classes=CLASSES, sensor_size=SENSOR_SIZE)
