"""Event-frame augmentation of a training minibatch: small spatial shifts and dropped events.

The same augmented minibatch is seen by every population member (ES compares members on equal
data), and it is a pure function of (seed, generation), so a resumed run sees the same batches.
"""

from __future__ import annotations

import torch

from spikeroll.noise import counter_seed


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
        padded = torch.nn.functional.pad(frames, (s, s, s, s))
        offsets = torch.randint(0, 2 * s + 1, (frames.shape[0], 2), generator=gen).tolist()
        H, W = frames.shape[-2:]
        out = torch.stack([padded[i, ..., oy : oy + H, ox : ox + W] for i, (oy, ox) in enumerate(offsets)])
    if drop > 0:
        keep = torch.rand(out.shape, generator=gen) >= drop
        out = out * keep.to(out.dtype)
    return out
