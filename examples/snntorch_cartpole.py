"""An snnTorch spiking policy for a Gymnasium control task, trained by spikeroll's EGGROLL:

    spikeroll train --env CartPole-v1 --model examples/snntorch_cartpole.py:make_policy --out runs/cp-snntorch
    spikeroll eval runs/cp-snntorch --model examples/snntorch_cartpole.py:make_policy

The contract of a control --model (docs/control.md): FACTORY(obs_dim, action_dim) returns an
nn.Module mapping normalised observations (B, obs_dim) to outputs (B, action_dim); for a Discrete
action space the action is their argmax. spikeroll normalises and clips the observations.

This one is the built-in policy's shape in snnTorch: the observation is a constant input current
for 8 time steps into Linear(obs, 16) → Leaky, then Linear(16, actions) → a non-resetting Leaky
readout whose membrane, averaged over the steps, is the output.
"""

from __future__ import annotations

import snntorch as snn
import torch
from torch import nn


class LeakyPolicy(nn.Module):
    """observations (B, obs_dim) -> outputs (B, action_dim): the readout membrane averaged over `steps`."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: int = 16, steps: int = 8, beta: float = 0.9,
                 init_gain: float = 2.0):
        super().__init__()
        self.steps = steps
        self.fc1, self.fc2 = nn.Linear(obs_dim, hidden), nn.Linear(hidden, action_dim)
        self.lif1 = snn.Leaky(beta=beta, init_hidden=True)
        self.readout = snn.Leaky(beta=beta, init_hidden=True, output=True, reset_mechanism="none")
        with torch.no_grad():  # PyTorch's default init x2: the hidden layer spikes from the start
            for layer in (self.fc1, self.fc2):
                layer.weight.mul_(init_gain)

    def forward(self, x):
        self.lif1.reset_mem()  # every environment step starts from rest, as the built-in policy does
        self.readout.reset_mem()
        current = self.fc1(x)  # a constant input current: computed once, fed at every step
        total = 0.0
        for _ in range(self.steps):
            _, mem = self.readout(self.fc2(self.lif1(current)))
            total = total + mem
        return total / self.steps


def make_policy(obs_dim: int, action_dim: int) -> LeakyPolicy:
    return LeakyPolicy(obs_dim, action_dim)
