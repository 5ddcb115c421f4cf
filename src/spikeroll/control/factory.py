"""The policy a control run trains: the one place that picks spikeroll's built-in policy
(`policy.builtin_policy`) or the user's module (`module_policy`, cfg.model). It sits above both,
since the module policy builds on the built-in one's class."""

from __future__ import annotations

from spikeroll.control.module_policy import make_module_policy
from spikeroll.control.policy import SpikingPolicy, builtin_policy


def make_policy(cfg, observation_space, action_space) -> SpikingPolicy:
    """The policy a ControlConfig describes for an env's spaces, parameters initialised from cfg.seed."""
    if cfg.model:
        return make_module_policy(cfg, observation_space, action_space)
    return builtin_policy(cfg, observation_space, action_space)
