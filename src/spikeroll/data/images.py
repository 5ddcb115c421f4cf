"""Image sources for the saccade simulator: MNIST IDX files (optionally gzipped) or PNG folders."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from spikeroll.errors import SpikerollError


def read_idx(path: str | Path, expect_magic: int) -> np.ndarray:
    """Read an IDX file (magic 2051 = images (N,H,W) uint8, 2049 = labels (N,) uint8)."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise SpikerollError(f"cannot read IDX file {path}: {e}; re-download it") from None
    if len(raw) < 8 or int.from_bytes(raw[:4], "big") != expect_magic:
        raise SpikerollError(f"{path} is not an IDX file with magic {expect_magic}; pass an MNIST "
                             f"{'images' if expect_magic == 2051 else 'labels'} file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise SpikerollError(f"{path} is truncated ({body.size} bytes for dims {dims}); re-download it")
    return body.reshape(dims)


def _labels_path(images: Path) -> Path:
    # MNIST naming: t10k-images-idx3-ubyte.gz -> t10k-labels-idx1-ubyte.gz
    guess = images.with_name(images.name.replace("images", "labels").replace("idx3", "idx1"))
    if guess != images and guess.exists():
        return guess
    prefix = images.name.split("-")[0]
    cands = sorted(p for p in images.parent.glob("*labels*") if p.name.startswith(prefix)) or \
        sorted(images.parent.glob("*labels*"))
    if len(cands) != 1:
        raise SpikerollError(f"found {len(cands)} '*labels*' files next to {images}; put exactly the "
                             "matching MNIST labels IDX file beside the images file")
    return cands[0]


def load_images(source: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(images (N,H,W) uint8, labels (N,) int64) from an IDX images file or a <label>/ PNG folder."""
    src = Path(source).expanduser()
    if not src.exists():
        raise SpikerollError(f"images source {src} does not exist; pass an MNIST images IDX file "
                             "or a folder of <label>/*.png")
    if src.is_dir():
        return _load_png_folder(src)
    images = read_idx(src, 2051)
    labels = read_idx(_labels_path(src), 2049).astype(np.int64)
    if len(labels) != len(images):
        raise SpikerollError(f"{src} holds {len(images)} images but its labels file {len(labels)} labels; "
                             "use the matching pair")
    return images, labels


def _load_png_folder(root: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        from PIL import Image  # optional: Pillow
        read = lambda p: np.asarray(Image.open(p).convert("L"))
    except ImportError:
        try:
            import matplotlib.image as mpimg  # optional: matplotlib (the plot extra)
        except ImportError:
            raise SpikerollError("reading PNG folders needs Pillow or matplotlib; pip install pillow") from None

        def read(p):
            a = mpimg.imread(p)  # floats in 0..1 for PNG; RGB(A) -> luminance
            a = a[..., :3].mean(-1) if a.ndim == 3 else a
            return np.rint(a * 255).astype(np.uint8)
    files = sorted((d.name, p) for d in root.iterdir() if d.is_dir() and d.name.isdigit()
                   for p in d.glob("*.png"))
    if not files:
        raise SpikerollError(f"no <label>/*.png images under {root}; use digit-named class folders")
    imgs = [read(p) for _, p in files]
    shapes = {a.shape for a in imgs}
    if len(shapes) != 1:
        raise SpikerollError(f"PNG images under {root} have different sizes {sorted(shapes)}; make them equal")
    return np.stack(imgs), np.array([int(lab) for lab, _ in files], np.int64)
