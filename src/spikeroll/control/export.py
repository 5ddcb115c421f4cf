"""What an exported integer control policy (neuron = "loihi") carries besides its network.

A float policy's observation normalisation is folded into its first layer (`trainer.folded_network`);
an integer policy's cannot be: the chip's input is the *normalised* observation quantised to graded
spikes, and (obs − mean)/std has no exact form in integer weights. So the export keeps the network
as the chip runs it (`interop.nir.export_integer_graph`, `nets.integer.export_loihi`) and states,
as numbers in the metadata and rules in the conventions, how the host turns a raw observation into
the chip's input and the readout into an action, exactly as `IntegerPolicy` does.
"""

from __future__ import annotations

from spikeroll.control.policy import IntegerPolicy, ObsStats

NORMALISE = ("x = clip((obs − obs_mean) / obs_std, −obs_clip, obs_clip), computed in float32 (obs, obs_mean, "
             "obs_std as float32)")
NO_NORMALISE = "x = obs as float32 (obs_norm is off: no normalisation, no clip)"
QUANTISE = ("s = clamp(round(x·2^input_exponent), −127, 127), rounding half to even: signed 8-bit graded "
            "spikes, one input neuron per observation dimension, the same s in each of the time_bins steps")
TIME = ("per environment step: time_bins + L steps (L dense layers), zero input after the time_bins steps; "
        "every neuron's state starts at zero at each environment step")
READOUT = ("readout = Σ_t v_t of the non-spiking output layer over the time_bins + L steps, divided by "
           "time_bins·2^20 in float64 and rounded to float32")
DISCRETE = "action = action_start + the index of the largest readout (the first one on ties)"
BOX = "action = action_low + (tanh(readout) + 1)·0.5·(action_high − action_low), per dimension, in float32"


def integer_description(env: str, policy: IntegerPolicy, stats: ObsStats) -> tuple[dict, dict]:
    """(conventions, metadata) of an integer policy's export: rules in words that replace the
    classification network's (input, time, readout) plus the action rule, and the numbers they
    name (plain Python values, for NIR's HDF5 and for JSON)."""
    normalise = NORMALISE if stats.enabled else NO_NORMALISE
    conventions = {"input": f"{normalise}; {QUANTISE}", "time": TIME, "readout": READOUT,
                   "action": DISCRETE if policy.discrete else BOX}
    metadata = {"env": env, "time_bins": int(policy.time_bins), "obs_norm": bool(stats.enabled),
                "input_exponent": int(policy.exponent)}
    if stats.enabled:  # the float32 values `ObsStats.normalise` uses, exactly
        mean, std = stats.mean_std()
        metadata.update(obs_mean=mean.tolist(), obs_std=std.tolist(), obs_clip=float(stats.clip))
    if policy.discrete:
        metadata["action_start"] = int(policy.start)
    else:
        metadata.update(action_low=policy.low.tolist(), action_high=policy.high.tolist())
    return conventions, metadata

