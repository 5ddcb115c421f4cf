"""Augmentation and test-time augmentation checked against an explicit per-pixel shift."""

import torch

from spikeroll.data import Split
from spikeroll.data.augment import augment_frames, shift_frames, shifts
from spikeroll.nets.model import SpikingNet
from spikeroll.training.evaluation import accuracy


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


def test_shift_frames_matches_the_pixel_by_pixel_translation():
    sample = torch.randint(0, 3, (2, 2, 5, 4), dtype=torch.uint8)
    for dy, dx in shifts(2):  # shift_frames moves content by (dy, dx); the reference reads from (y+dy, x+dx)
        assert torch.equal(shift_frames(sample, dy, dx), shifted_reference(sample, -dy, -dx))
    assert len(shifts(1)) == 9 and len(set(shifts(1))) == 9 and (0, 0) in shifts(1)


def test_test_time_augmentation_averages_probabilities_over_shifts():
    """accuracy(tta_shift=1) against a brute force: every shifted copy built pixel by pixel and
    classified one recording at a time, class probabilities summed by hand."""
    gen = torch.Generator().manual_seed(0)
    frames = (torch.rand(40, 4, 2, 6, 6, generator=gen) < 0.3).to(torch.uint8)
    labels = torch.randint(0, 10, (40,), generator=gen)
    net = SpikingNet([72, 16, 10], init_gain=4.0, seed=3)
    plain, tta = [], []
    with torch.no_grad():
        for sample in frames.float():
            plain.append(int(net.logits(sample[None]).argmax()))
            probs = torch.zeros(10)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    probs += torch.softmax(net.logits(shifted_reference(sample, dy, dx)[None])[0], -1)
            tta.append(int(probs.argmax()))
    assert plain != tta  # the case distinguishes averaging over shifts from a single pass
    split = Split(frames, labels)
    expected = sum(p == int(y) for p, y in zip(tta, labels)) / 40
    assert accuracy(net, split, batch=16, tta_shift=1) == expected
    assert accuracy(net, split) == sum(p == int(y) for p, y in zip(plain, labels)) / 40
