"""snnTorch's N-MNIST convolutional SNN (tutorial 7), narrowed to fit 2 CPU cores, trained by
spikeroll's EGGROLL or by BPTT with snnTorch's own surrogate gradient, on the same split.

    python examples/snntorch_csnn.py --strategy eggroll --data-dir ../shared/data/nmnist-subset
    python examples/snntorch_csnn.py --strategy bptt    --data-dir ../shared/data/nmnist-subset

or, with any settings, through the CLI (factories `make_csnn_strided`, the one trained above, and
`make_csnn`, with the tutorial's max-pools):

    spikeroll train --model examples/snntorch_csnn.py:make_csnn_strided --dataset nmnist --data-dir DIR ...

The tutorial's network is Conv(2→12, 5)–MaxPool 2–Leaky, Conv(12→32, 5)–MaxPool 2–Leaky,
Linear(800→10)–Leaky with β = 0.5 and the arctan surrogate. Here the frames are first averaged
over 2×2 pixels (34×34 → 17×17, parameter-free), the layers are narrower (8 and 16 channels) and,
in `make_csnn_strided`, each conv + max-pool is one stride-2 conv, so that a generation of a
population fits this machine. The output layer does not reset: its membrane, averaged over time,
is the logits that the cross-entropy fitness and the BPTT loss read. docs/modules.md has the results.
"""

from __future__ import annotations

import argparse
import json

import snntorch as snn
import torch
from snntorch import surrogate
from torch import nn


class CSNN(nn.Module):
    """frames (T, B, 2, 34, 34) -> logits (B, 10): the output membrane averaged over time."""

    def __init__(self, channels=(8, 16), beta=0.5, strided=False, init_gain=3.0):
        super().__init__()
        c1, c2 = channels
        grad = surrogate.atan()
        leaky = lambda **kw: snn.Leaky(beta=beta, spike_grad=grad, init_hidden=True, **kw)  # noqa: E731
        if strided:  # each conv + 2x2 max-pool as one stride-2 conv: 4x fewer per-member activations
            body = [nn.Conv2d(2, c1, 5, stride=2), leaky(), nn.Conv2d(c1, c2, 3, stride=2), leaky()]  # 7, 3
            flat = c2 * 3 * 3
        else:
            body = [nn.Conv2d(2, c1, 5), nn.MaxPool2d(2), leaky(), nn.Conv2d(c1, c2, 3), nn.MaxPool2d(2), leaky()]
            flat = c2 * 2 * 2  # 17 -> 13 -> 6 -> 4 -> 2
        self.net = nn.Sequential(nn.AvgPool2d(2), *body, nn.Flatten(), nn.Linear(flat, 10),  # AvgPool: 34 -> 17
                                 leaky(output=True, reset_mechanism="none"))
        with torch.no_grad():  # PyTorch's default init x3: otherwise the second layer never spikes at first
            for layer in self.net:
                if isinstance(layer, (nn.Conv2d, nn.Linear)):
                    layer.weight.mul_(init_gain)

    def forward(self, x):
        for m in self.net.modules():  # start from rest, as the tutorial's utils.reset(net)
            if isinstance(m, snn.Leaky):
                m.reset_mem()
        return torch.stack([self.net(x[t])[1] for t in range(x.shape[0])]).mean(0)


def make_csnn() -> CSNN:
    return CSNN()


def make_csnn_strided() -> CSNN:
    return CSNN(strided=True)


# What docs/modules.md reports. Both strategies share the split (ids 1-800 train, 801-1000 validate),
# the binning (T = 5), the minibatch, the ±1-pixel shift augmentation, the schedule and the number of
# steps; each run fits in 15 minutes on 2 cores. ES: 2,400 generations of 256 members; BPTT: as many
# Adam steps, snnTorch's arctan surrogate gradient through the same module.
COMMON = dict(time_bins=5, batch_size=64, generations=2400, augment_shift=1, weight_decay=0.1, lr_schedule="cosine")
SETTINGS = {
    "eggroll": dict(population=256, rank=1, sigma=0.1, sigma_final=0.02, lr=0.03),
    "bptt": dict(lr=0.005),
}


def main() -> None:
    from spikeroll import TrainConfig, train_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", choices=sorted(SETTINGS), default="eggroll")
    parser.add_argument("--data-dir", required=True, help="N-MNIST root holding Train/ (ids 801-1000 validate)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--generations", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads [default: torch's]")
    parser.add_argument("--factory", default="make_csnn_strided", choices=["make_csnn", "make_csnn_strided"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = {**COMMON, **SETTINGS[args.strategy]}
    if args.generations:
        settings["generations"] = args.generations
    cfg = TrainConfig(dataset="nmnist", data_dir=args.data_dir, val_ids="801-1000", strategy=args.strategy,
                      model=f"{__file__}:{args.factory}", eval_every=100, seed=args.seed, **settings)
    report = train_run(cfg, args.out or f"runs/csnn-{args.strategy}-seed{args.seed}", overwrite=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
