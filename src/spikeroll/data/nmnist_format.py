"""The original N-MNIST binary format: 5 bytes per event, big-endian bit fields
x (bits 39-32), y (31-24), polarity (bit 23, 1 = ON), timestamp in us (22-0).
A record with y == 240 marks a timestamp overflow: every later event gains 2**23 us.

Any bytes at all decode without a crash: what is not an N-MNIST recording is an NmnistFormatError
(a SpikerollError, so the CLI prints one line; also a ValueError, as this module raised before)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeroll.data.events import EVENT_DTYPE, SENSOR
from spikeroll.errors import SpikerollError

OVERFLOW_Y = 240
_TS_BITS = 23
MAX_OVERFLOWS = 2**16  # timestamps up to 2**39 us (6.4 days): a longer recording is not N-MNIST


class NmnistFormatError(SpikerollError, ValueError):
    """Bytes or events that are not an N-MNIST recording; the message names the file."""


def decode(raw: bytes | np.ndarray, name: str = "<bytes>") -> np.ndarray:
    """Decode raw N-MNIST bytes to events. Raises NmnistFormatError (message names `name`) on malformed data."""
    b = np.frombuffer(raw, np.uint8) if not isinstance(raw, np.ndarray) else raw.reshape(-1).view(np.uint8)
    if b.size % 5:
        raise NmnistFormatError(f"{name}: size {b.size} bytes is not a multiple of 5 (truncated or not N-MNIST)")
    r = b.reshape(-1, 5)
    marker = r[:, 1] == OVERFLOW_Y
    t = ((r[:, 2].astype(np.int64) & 0x7F) << 16) | (r[:, 3].astype(np.int64) << 8) | r[:, 4]
    t += np.cumsum(marker, dtype=np.int64) << _TS_BITS  # markers shift everything after them
    keep = ~marker
    ev = np.empty(int(keep.sum()), EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"], ev["t"] = r[keep, 0], r[keep, 1], r[keep, 2] >> 7, t[keep]
    if ev.size == 0:
        raise NmnistFormatError(f"{name}: empty recording (no events)")
    if ev["x"].max() >= SENSOR or ev["y"].max() >= SENSOR:
        raise NmnistFormatError(f"{name}: coordinates outside the {SENSOR}x{SENSOR} sensor (not an N-MNIST file?)")
    if np.any(np.diff(ev["t"]) < 0):
        ev = ev[np.argsort(ev["t"], kind="stable")]
    return ev


def read_nmnist_bin(path: str | Path) -> np.ndarray:
    """Read one N-MNIST .bin file into an events array (sorted by t)."""
    try:
        raw = np.fromfile(path, np.uint8)
    except (OSError, ValueError) as e:  # missing, a folder, unreadable, a name the OS refuses
        reason = e.strerror if isinstance(e, OSError) and e.strerror else (str(e).splitlines() or [type(e).__name__])[0]
        raise NmnistFormatError(f"cannot read N-MNIST file {path} ({reason}); check the path") from None
    return decode(raw, str(path))


def encode(events: np.ndarray) -> bytes:
    """Encode events (sorted by t, 0 <= t < 2**39 us, x and y on the 34x34 sensor, p 0 or 1) to
    N-MNIST bytes, inserting an overflow record (x=0, y=240, p=0, t=0) each time t crosses a
    multiple of 2**23 us; other events are an NmnistFormatError."""
    t = np.asarray(events["t"], np.int64)
    if t.size and (t.min() < 0 or np.any(np.diff(t) < 0)):
        raise NmnistFormatError("events must be sorted by t with t >= 0 to be written")
    if t.size and int(t.max()) >> _TS_BITS > MAX_OVERFLOWS:
        raise NmnistFormatError(f"event time {int(t.max())} us is beyond N-MNIST's range "
                                f"({MAX_OVERFLOWS} timestamp overflows of 2**{_TS_BITS} us)")
    x, y, p = (np.asarray(events[k], np.int64) for k in ("x", "y", "p"))
    if t.size and (x.min() < 0 or y.min() < 0 or x.max() >= SENSOR or y.max() >= SENSOR):
        raise NmnistFormatError(f"event coordinates must lie on the {SENSOR}x{SENSOR} sensor to be written")
    if t.size and (p.min() < 0 or p.max() > 1):
        raise NmnistFormatError("event polarities must be 0 or 1 to be written")
    epoch = t >> _TS_BITS
    n_markers = np.diff(epoch, prepend=0)  # markers to emit just before each event
    pos = np.arange(t.size) + np.cumsum(n_markers)  # row of each event once markers are inserted
    rows = np.zeros((t.size + int(n_markers.sum()), 5), np.uint8)
    rows[:, 1] = OVERFLOW_Y  # every row not overwritten below stays a marker
    low = t & ((1 << _TS_BITS) - 1)
    rows[pos, 0], rows[pos, 1] = events["x"], events["y"]
    rows[pos, 2] = (p << 7 | low >> 16).astype(np.uint8)
    rows[pos, 3], rows[pos, 4] = (low >> 8) & 0xFF, low & 0xFF
    return rows.tobytes()


def write_nmnist_bin(path: str | Path, events: np.ndarray) -> None:
    """Write events as an N-MNIST .bin file (see encode)."""
    Path(path).write_bytes(encode(events))
