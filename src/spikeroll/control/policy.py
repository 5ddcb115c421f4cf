"""The spiking policy: observation -> LIF layers -> leaky readout -> action, for a whole population.

Encoding, per environment step:

1. normalise: x = clip((obs − mean) / std, ±obs_clip), with the running mean and std of every
   member's observations (as in OpenAI-ES): `ObsStats`, updated after each generation and frozen
   within it (identity when obs_norm is off);
2. x drives the first LIF layer as a constant input current x·Wᵀ + b over `time_bins` bins;
3. LIF hidden layers (`spikeroll.nets.model.lif`: v ← β·v + I, spike at v ≥ θ, reset), whose state
   starts at zero every environment step (the policy is a function of the current observation);
4. a leaky non-spiking readout whose time-averaged membrane is the output (`leaky_readout`);
5. Discrete actions: argmax of the readout; Box actions: tanh of the readout scaled to the bounds.

The parameters live in a `SpikingNet` (sizes [obs_dim, *hidden, n_out], membrane readout), so a
control checkpoint stores them exactly as a classification run does. Unlike classification, every
member sees its own observations: inputs are (N, E, obs_dim), member 2k = θ + noise of pair k,
member 2k+1 = θ − noise, and each layer's current is x·Wᵀ plus the low-rank correction (x·B)·Aᵀ as
batched products (`nets.model.perturbed_current`); no per-member weight matrix is formed. The plain
policy is the same code with N = 1 and no noise.

`IntegerPolicy` (neuron = "loihi") runs the same policy as the chip would: the normalised
observation quantised to signed 8-bit graded spikes (`quantise_observations`), B-bit weights and
Loihi's integer LIF dynamics (`spikeroll.nets.integer.IntegerNet`, every member on its own inputs).
`integer_policy` turns a trained float policy into one (post-training quantisation).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from spikeroll.control.envs import is_discrete, space_sizes
from spikeroll.control.kernel import lif_steps
from spikeroll.errors import SpikerollError
from spikeroll.nets import kernels
from spikeroll.nets.integer import INT8_MAX, IntegerNet
from spikeroll.nets.model import LayerNoise, SpikingNet, lif, readout_weights


class ObsStats:
    """Running sums of observations (float64): mean and std for normalisation, as OpenAI-ES keeps them.

    Starts at count = 0.01 with sumsq = 0.01 (mean 0, std 1); std is at least 0.1.
    """

    EPS = 1e-2

    def __init__(self, dim: int, enabled: bool = True, clip: float = 5.0):
        self.enabled, self.clip = enabled, clip
        self._frozen: tuple[np.ndarray, np.ndarray] | None = None
        self.count = torch.tensor(self.EPS, dtype=torch.float64)
        self.sum = torch.zeros(dim, dtype=torch.float64)
        self.sumsq = torch.full((dim,), self.EPS, dtype=torch.float64)

    def update(self, count: float, total: np.ndarray, total_sq: np.ndarray) -> None:
        """Add a generation's observation count, sum and sum of squares."""
        if self.enabled and count > 0:
            self.count += count
            self.sum += torch.from_numpy(np.asarray(total, dtype=np.float64))
            self.sumsq += torch.from_numpy(np.asarray(total_sq, dtype=np.float64))

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The current (mean, std) as float32 tensors."""
        mean = self.sum / self.count
        var = torch.clamp(self.sumsq / self.count - mean**2, min=self.EPS)
        return mean.float(), var.sqrt().float()

    def normalise(self, obs: np.ndarray) -> torch.Tensor:
        """clip((obs − mean)/std, ±clip) as float32 (the observations as they are when disabled)."""
        x = np.ascontiguousarray(obs, dtype=np.float32)
        if self.enabled:
            mean, std = self._frozen if self._frozen is not None else self._numpy(self.mean_std())
            x = np.clip((x - mean) / std, -self.clip, self.clip).astype(np.float32, copy=False)
        return torch.from_numpy(x)

    @staticmethod
    def _numpy(mean_std: tuple[torch.Tensor, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        return mean_std[0].numpy(), mean_std[1].numpy()

    def freeze(self) -> None:
        """Fix (mean, std) for a generation's rollouts (`update` does not change them until `unfreeze`)."""
        self._frozen = self._numpy(self.mean_std())

    def unfreeze(self) -> None:
        """Normalise with the latest statistics again."""
        self._frozen = None

    def state_dict(self) -> dict:
        """The statistics, for a checkpoint."""
        return {"count": self.count.clone(), "sum": self.sum.clone(), "sumsq": self.sumsq.clone()}

    def load_state_dict(self, state: dict) -> None:
        """Restore statistics saved by `state_dict`."""
        self.count, self.sum, self.sumsq = (state[k].to(torch.float64).clone() for k in ("count", "sum", "sumsq"))
        self._frozen = None


class SpikingPolicy:
    """A SpikingNet driven by observations, with the action mapping of a Discrete or Box action space.

    `low`/`high` are the Box bounds (None for Discrete); `start` is a Discrete space's first action.
    """

    def __init__(self, net: SpikingNet, time_bins: int, low: np.ndarray | None = None,
                 high: np.ndarray | None = None, start: int = 0):
        self.net, self.time_bins, self.start = net, time_bins, int(start)
        self.use_kernel = True  # False: PyTorch's `lif` (the reference the numba loop is tested against)
        self._readout: torch.Tensor | None = None
        self.discrete = low is None
        if not self.discrete:
            self.low = torch.as_tensor(np.asarray(low, dtype=np.float32))
            self.high = torch.as_tensor(np.asarray(high, dtype=np.float32))

    def ask(self, strategy, generation: int, pairs: range, sigma: float) -> list[LayerNoise]:
        """The noise of the members of `pairs` that `rollout` takes (the strategy's per-layer noise)."""
        return strategy.ask(generation, pairs, sigma)

    def prepare(self, noise: list[LayerNoise] | None) -> list[tuple] | None:
        """What `outputs` reuses at every step of a rollout with this noise (`member_factors`)."""
        return None if noise is None else member_factors(noise)

    @torch.no_grad()
    def outputs(self, x: torch.Tensor, noise: list[LayerNoise] | None = None,
                factors: list[tuple] | None = None) -> torch.Tensor:
        """Readouts (N, E, n_out) of N members for their own inputs x (N, E, obs_dim).

        With `noise` for P pairs (or its `member_factors`, computed once per generation), N = 2P and
        member 2k (2k+1) runs θ + (−) noise of pair k; without it every row of x runs the plain
        policy. A layer's current is the shared x·Wᵀ + b plus, per member, (x·B)·Aᵀ (or x·Eᵀ for
        full-rank noise) and its bias noise, as batched products. The readout is linear in its input
        spikes, so the time-averaged leaky membrane is the readout layer applied to the weighted
        spike sum Σ_t w_t·s_t (`readout_weights`).
        """
        net, T = self.net, self.time_bins
        layers = net.layer_params()
        n, e, _ = x.shape
        if factors is None and noise is not None:
            factors = member_factors(noise)
        h = x
        for i, (weight, bias) in enumerate(layers):
            f = None if factors is None else factors[i]
            if i == len(layers) - 1:  # h: (N, E, in), the weighted spike sum; Σ_t w_t = `total`
                total = float(self._weights.sum())
                return layer_current(h, weight, bias * total, f, bias_scale=total)
            current = layer_current(h, weight, bias, f)  # (N, M, out) with M = E (constant input) or T·E
            last_hidden = i + 1 == len(layers) - 1
            current = current.view(n, 1, -1) if i == 0 else current.view(n, T, -1)
            if self.use_kernel and kernels.available() and current.dtype == torch.float32:
                spikes, weighted = lif_steps(current, T, net.beta, net.threshold, net.reset, self._weights,
                                             trains=not last_hidden)
            else:
                spikes = lif(current.expand(n, T, -1) if i == 0 else current, net.beta, net.threshold, net.reset)
                weighted = torch.einsum("t,ntr->nr", self._weights, spikes) if last_hidden else None
            h = weighted.view(n, e, -1) if last_hidden else spikes.reshape(n, T * e, -1)
        raise AssertionError("a SpikingNet has at least one layer")

    @property
    def _weights(self) -> torch.Tensor:
        """The leaky readout's weights over the time bins (mean_t u_t = Σ_t w_t·I_t)."""
        if self._readout is None:
            self._readout = readout_weights(self.time_bins, self.net.beta)
        return self._readout

    def actions(self, outputs: torch.Tensor) -> np.ndarray:
        """Readouts (..., n_out) -> actions: argmax (int64) for Discrete, tanh scaled to [low, high] for Box."""
        if self.discrete:
            return outputs.argmax(-1).numpy().astype(np.int64) + self.start
        scaled = self.low + (torch.tanh(outputs) + 1.0) * 0.5 * (self.high - self.low)
        return scaled.numpy().astype(np.float32)


def input_exponent(obs_clip: float) -> int:
    """F of the graded spikes s = round(x·2^F): the largest power of two at which ±obs_clip still
    fits a signed 8-bit spike (F = 4 for the default clip of 5: steps of 1/16 of a std, ±80)."""
    return math.floor(math.log2(INT8_MAX / obs_clip))


def quantise_observations(x: torch.Tensor, exponent: int) -> torch.Tensor:
    """Normalised observations -> the chip's signed 8-bit graded spikes, clamp(round(x·2^F), ±127) (int32)."""
    return torch.clamp(torch.round(x.double() * 2.0**exponent), -INT8_MAX, INT8_MAX).to(torch.int32)


class IntegerPolicy(SpikingPolicy):
    """The policy on Loihi's integer arithmetic: normalised observations (on the host) are quantised
    to signed 8-bit graded spikes (`quantise_observations`), sent as the same spike in each of the
    `time_bins` steps, and the IntegerNet (B-bit weights, Loihi LIF, membrane readout; its T + L steps
    and one-step synaptic delays as in classification) gives the readout the action is chosen from,
    as the float policy's. Every member runs on its own observations; its noise is the integer
    low-rank correction of `IntegerNet` (int8 B, fixed-point A)."""

    def __init__(self, net: IntegerNet, time_bins: int, exponent: int, low: np.ndarray | None = None,
                 high: np.ndarray | None = None, start: int = 0):
        super().__init__(net, time_bins, low, high, start)
        self.exponent = exponent

    def prepare(self, noise: list[LayerNoise] | None) -> tuple:
        """The quantised layers and the members' integer noise terms, formed once per rollout."""
        layers = self.net.layers()
        return noise, layers, self.net.member_terms(layers, noise)

    @torch.no_grad()
    def outputs(self, x: torch.Tensor, noise: list[LayerNoise] | None = None, factors: tuple | None = None):
        """Readouts (N, E, n_out) of N members for their own normalised observations x (N, E, obs_dim)."""
        noise, layers, terms = factors if factors is not None else self.prepare(noise)
        spikes = quantise_observations(x, self.exponent)  # (N, E, n)
        spikes = spikes[:, None].expand(-1, self.time_bins, -1, -1)  # the same spike in every bin
        return self.net.member_logits(spikes, noise, layers, terms)


def integer_policy(policy: SpikingPolicy, weight_bits: int, obs_clip: float) -> IntegerPolicy:
    """A float policy's parameters on the integer network (post-training quantisation): the same
    latent weights, quantised to B bits, with Loihi's dynamics (reset to zero, strict threshold,
    one-step delays); what the float policy would do on the chip."""
    net = policy.net
    if isinstance(net, IntegerNet):
        raise SpikerollError("this run's policy is already integer (neuron = \"loihi\"); evaluate it as it is")
    if net.threshold != 1.0:
        raise SpikerollError(f"threshold={net.threshold}: the integer policy takes weights in threshold "
                             "units (threshold 1.0); retrain with threshold = 1.0")
    exponent = input_exponent(obs_clip)
    integer = IntegerNet(net.sizes, weight_bits, beta=net.beta, readout="membrane", input_scale=2.0**exponent)
    integer.load_parameters([p.detach() for p in net.params.values()])
    box = None if policy.discrete else (policy.low.numpy(), policy.high.numpy())
    return IntegerPolicy(integer, policy.time_bins, exponent, *(box or (None, None)), start=policy.start)


def builtin_policy(cfg, observation_space, action_space) -> SpikingPolicy:
    """spikeroll's own policy a ControlConfig describes for an env's spaces (parameters initialised
    from cfg.seed): float LIF (neuron = "lif") or the integer Loihi policy (neuron = "loihi")."""
    n_obs, n_out = space_sizes(observation_space, action_space)
    sizes = [n_obs, *cfg.hidden, n_out]
    box = None if is_discrete(action_space) else (action_space.low, action_space.high)
    start = 0 if box else int(action_space.start)
    if cfg.neuron == "loihi":
        exponent = input_exponent(cfg.obs_clip)
        net = IntegerNet(sizes, cfg.weight_bits, beta=cfg.beta, readout="membrane", init_gain=cfg.init_gain,
                         seed=cfg.seed, input_scale=2.0**exponent)
        return IntegerPolicy(net, cfg.time_bins, exponent, *(box or (None, None)), start=start)
    net = SpikingNet(sizes, beta=cfg.beta, threshold=cfg.threshold, reset=cfg.reset,
                     readout="membrane", init_gain=cfg.init_gain, seed=cfg.seed)
    return SpikingPolicy(net, cfg.time_bins, *(box or (None, None)), start=start)


def member_factors(noise: list[LayerNoise]) -> list[tuple]:
    """Per-member noise of every layer from per-pair noise: member 2k gets +noise_k, 2k+1 gets −noise_k.

    Per layer (A (N, out, r), B (N, in, r), None, bias (N, out)) for low rank, (None, None, E (N, out, in),
    bias) for full rank; the signs are folded into A (or E) and the bias.
    """
    out = []
    for layer in noise:
        def signed(t):
            return None if t is None else torch.stack([t, -t], dim=1).flatten(0, 1)

        b = None if layer.weight_b is None else layer.weight_b.repeat_interleave(2, dim=0)
        out.append((signed(layer.weight_a), b, signed(layer.weight_full), signed(layer.bias)))
    return out


def layer_current(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, factors: tuple | None,
                  bias_scale: float = 1.0) -> torch.Tensor:
    """(N, M, in) -> (N, M, out): h·Wᵀ + b for every member at once, plus each member's own
    correction (h·B)·Aᵀ (or h·Eᵀ) and bias noise·bias_scale when `factors` (`member_factors`) are given."""
    current = torch.matmul(h, weight.t()) + bias
    if factors is None:
        return current
    a, b, full, bias_noise = factors
    if full is not None:
        current = current.baddbmm_(h, full.transpose(1, 2))
    else:
        current = current.baddbmm_(torch.bmm(h, b), a.transpose(1, 2))
    if bias_noise is not None:
        current += bias_noise[:, None, :] * bias_scale
    return current


def member_weights(weight: torch.Tensor, bias: torch.Tensor, noise: LayerNoise, member: int):
    """The explicit (weight, bias) of one member, W + s·A_k·B_kᵀ (A already carries σ/√r), for tests."""
    k, sign = divmod(member, 2)
    s = 1.0 - 2.0 * sign
    if noise.weight_full is not None:
        w = weight + s * noise.weight_full[k]
    else:
        w = weight + s * noise.weight_a[k] @ noise.weight_b[k].t()
    b = bias if noise.bias is None else bias + s * noise.bias[k]
    return w, b
