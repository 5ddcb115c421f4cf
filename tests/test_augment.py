"""Augmentation checked against an explicit per-pixel shift."""

import torch

from spikeroll.augment import augment_frames


def shifted_reference(sample, dy, dx):
    """out[..., y, x] = sample[..., y + dy, x + dx] where inside, else 0 (written pixel by pixel)."""
    out = torch.zeros_like(sample)
    H, W = sample.shape[-2:]
    for y in range(H):
        for x in range(W):
            if 0 <= y + dy < H and 0 <= x + dx < W:
                out[..., y, x] = sample[..., y + dy, x + dx]
    return out


def test_shift_is_a_zero_filled_translation_and_deterministic():
    frames = torch.randint(0, 3, (6, 2, 2, 5, 4), dtype=torch.uint8)
    out = augment_frames(frames, seed=1, generation=7, max_shift=2)
    assert torch.equal(out, augment_frames(frames, seed=1, generation=7, max_shift=2))
    assert not torch.equal(out, augment_frames(frames, seed=1, generation=8, max_shift=2))
    for i in range(6):  # each sample equals exactly one of the 25 allowed translations
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(out[i], shifted_reference(frames[i], dy, dx))]
        assert matches, f"sample {i} is not a shifted copy"


def test_drop_removes_about_the_requested_share():
    frames = torch.ones(50, 4, 2, 10, 10, dtype=torch.uint8)
    kept = augment_frames(frames, seed=0, generation=0, drop=0.25).float().mean()
    assert 0.72 < kept < 0.78
    assert augment_frames(frames, seed=0, generation=0) is frames  # off by default
