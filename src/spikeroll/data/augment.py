"""Event-frame augmentation of a training minibatch: small spatial shifts and dropped events; and
the fixed set of shifts that test-time augmentation averages over.

The same augmented minibatch is seen by every population member (ES compares members on equal
data), and it is a pure function of (seed, generation), so a resumed run sees the same batches.
"""

from __future__ import annotations

import torch

from spikeroll.noise import counter_seed


def _window(padded: torch.Tensor, pad: int, dy: int, dx: int) -> torch.Tensor:
    """The (H, W) window of frames zero-padded by `pad` on every side that shows them translated
    by (dy, dx), |dy|, |dx| <= pad: the one place the shift convention lives."""
    H, W = padded.shape[-2] - 2 * pad, padded.shape[-1] - 2 * pad
    return padded[..., pad - dy : pad - dy + H, pad - dx : pad - dx + W]


def shift_frames(frames: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """frames (..., H, W) translated by (dy, dx) pixels: out[..., y, x] = frames[..., y − dy, x − dx],
    zero where that falls outside (a saccade that started elsewhere)."""
    s = max(abs(dy), abs(dx))
    if s == 0:
        return frames
    return _window(torch.nn.functional.pad(frames, (s, s, s, s)), s, dy, dx)


def shifts(max_shift: int) -> list[tuple[int, int]]:
    """Every (dy, dx) with |dy|, |dx| <= max_shift: (2·max_shift + 1)² translations."""
    return [(dy, dx) for dy in range(-max_shift, max_shift + 1) for dx in range(-max_shift, max_shift + 1)]


def augment_frames(frames: torch.Tensor, seed: int, generation: int, max_shift: int = 0,
                   drop: float = 0.0) -> torch.Tensor:
    """frames (B, T, P, H, W) -> each sample shifted by (dy, dx) ∈ [−max_shift, max_shift]²
    with zero fill (a saccade that started elsewhere), then each event bin dropped with prob. `drop`."""
    if max_shift <= 0 and drop <= 0:
        return frames
    gen = torch.Generator().manual_seed(counter_seed(seed, generation, -2, 0))
    out = frames
    if max_shift > 0:
        s = max_shift
        offsets = torch.randint(0, 2 * s + 1, (frames.shape[0], 2), generator=gen).tolist()
        padded = torch.nn.functional.pad(frames, (s, s, s, s))  # once for the batch, not per sample
        out = torch.stack([_window(padded[i], s, s - oy, s - ox) for i, (oy, ox) in enumerate(offsets)])
    if drop > 0:
        keep = torch.rand(out.shape, generator=gen) >= drop
        out = out * keep.to(out.dtype)
    return out
