"""Process memory probes shared by `bench` and `compare` (Linux /proc, glibc; safe no-ops elsewhere)."""

from __future__ import annotations

import ctypes
import gc
import os
import sys


def max_rss_bytes() -> int:
    """Peak resident set size of this process (since start, or since `reset_peak_rss`)."""
    import resource  # platform-optional: Unix only, so importing this module works everywhere

    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value if sys.platform == "darwin" else value * 1024  # KiB on Linux, bytes on macOS


def status_bytes(key: str) -> int | None:
    """A /proc/self/status memory line in bytes: "VmRSS" (now) or "VmHWM" (peak since reset)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc malloc_trim), so they do not count as resident."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_rss() -> bool:
    """Release free memory, then reset the RSS high-water mark (Linux >= 4.0); False where unsupported."""
    release_free_memory()
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD_MAX = 32 << 20  # the largest mmap threshold glibc accepts on 64-bit


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks of up to 32 MiB for reuse instead of giving them back to the
    OS. Why: a population forward of a user's module allocates a fresh N·B-row tensor at every
    step of every layer; with glibc's defaults many of them are unmapped when freed and faulted
    back in page by page at the next step (about 25,000 page faults per generation of the dense
    snnTorch network at population 512). The cost: the process keeps its peak heap. No-op (False)
    off glibc, or where the user set MALLOC_TRIM_THRESHOLD_ / MALLOC_MMAP_THRESHOLD_ themselves."""
    if not sys.platform.startswith("linux") or any(k in os.environ for k in ("MALLOC_TRIM_THRESHOLD_",
                                                                             "MALLOC_MMAP_THRESHOLD_")):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))
