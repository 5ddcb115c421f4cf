"""A stack of leaky integrate-and-fire (LIF) layers with a leaky readout, evaluated for a whole
population at once.

Activations are laid out member-major as (N, T, B, features): N population members (1 for the
plain network), T time bins, B samples; members 2k and 2k+1 (an antithetic pair) are adjacent, so a
pair's activations are one contiguous block that a batched matmul reads without copying. Parameters
are plain tensors in an ordered dict so that a strategy can perturb them and an optimizer can update
them.

Per-member perturbations are never materialised as weight matrices: a layer's current is the shared
x·Wᵀ plus a per-member correction (low-rank: (x·B)·Aᵀ; full-rank: x·Eᵀ), see `perturbed_current`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from spikeroll.config import READOUTS, RESETS
from spikeroll.errors import SpikerollError
from spikeroll.nets import kernels
from spikeroll.nets.counts import SpikeCounts

# The most bytes a population forward keeps for the inputs every member shares (the minibatch's
# float inputs and first-layer current); above it the minibatch runs in blocks of samples.
SHARED_INPUT_BUDGET_BYTES = 32 << 20  # as the pair activations (es.evaluators.ACTIVATION_BUDGET_BYTES)


@dataclass
class LayerNoise:
    """Noise of one pair slice for one layer, already scaled by σ (and 1/√r for low rank).

    Member 2k gets +noise of pair k, member 2k+1 gets −noise (antithetic sampling).
    """

    weight_a: torch.Tensor | None = None  # (P, out, r) low-rank factor A·σ/√r
    weight_b: torch.Tensor | None = None  # (P, in, r)  low-rank factor B
    weight_full: torch.Tensor | None = None  # (P, out, in) full-rank noise ·σ
    bias: torch.Tensor | None = None  # (P, out) ·σ

    @property
    def pairs(self) -> int:
        """P, the number of antithetic pairs the noise is for (0 when it holds nothing)."""
        for t in (self.weight_a, self.weight_full, self.bias):
            if t is not None:
                return t.shape[0]
        return 0


class FastSigmoidSpike(torch.autograd.Function):
    """Heaviside forward, fast-sigmoid surrogate derivative backward (Zenke & Ganguli 2018)."""

    slope = 25.0

    @staticmethod
    def forward(ctx, v_minus_threshold):
        """s = H(v − θ): 1 where v ≥ θ, else 0."""
        ctx.save_for_backward(v_minus_threshold)
        return (v_minus_threshold >= 0).to(v_minus_threshold.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        """∂s/∂v ≈ 1 / (slope·|v − θ| + 1)²."""
        (x,) = ctx.saved_tensors
        return grad_output / (FastSigmoidSpike.slope * x.abs() + 1.0) ** 2


def lif(current: torch.Tensor, beta: float, threshold: float, reset: str) -> torch.Tensor:
    """Run LIF neurons over time (axis 1): v ← β·v + I; spike = v ≥ θ; reset.

    Returns spikes shaped like `current`. With autograd on, spikes use the surrogate derivative;
    otherwise the loop runs in place (ES evaluates millions of neurons per step).
    """
    steps = current.shape[1]
    if torch.is_grad_enabled() and current.requires_grad:
        v, spikes = torch.zeros_like(current[:, 0]), []
        for t in range(steps):
            v = beta * v + current[:, t]
            s = FastSigmoidSpike.apply(v - threshold)
            v = v - s * threshold if reset == "subtract" else v * (1.0 - s)
            spikes.append(s)
        return torch.stack(spikes, dim=1)
    spikes = torch.empty_like(current)
    v = torch.zeros_like(current[:, 0])
    for t in range(steps):
        torch.add(current[:, t], v, alpha=beta, out=v)  # v ← β·v + I in one pass
        s = spikes[:, t]
        # s = [v ≥ θ] as float: sign(v − θ) + 1 ∈ {0, 1, 2}, clamped to 1. Exact, and about 3x
        # faster on CPU than a comparison whose bool result must then be converted to float.
        torch.sub(v, threshold, out=s).sign_().add_(1.0).clamp_(max=1.0)
        if reset == "subtract":
            v.sub_(s, alpha=threshold)
        else:
            v.addcmul_(v, s, value=-1.0)
    return spikes


def readout_weights(T: int, beta: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """w_s with mean_t u_t = Σ_s w_s·I_s for the leaky integrator u ← β·u + I over T steps:
    w_s = (1 − β^(T−s)) / ((1 − β)·T), and (T − s)/T for β = 1."""
    steps = torch.arange(T, 0, -1, dtype=dtype, device=device)  # T − s
    weights = steps if beta == 1.0 else (1 - beta**steps) / (1 - beta)
    return weights / T


def leaky_readout(current: torch.Tensor, beta: float) -> torch.Tensor:
    """Non-spiking leaky integrator u ← β·u + I over time (axis 1); the readout is u averaged over
    time, computed in closed form as one weighted sum over time (`readout_weights`)."""
    weights = readout_weights(current.shape[1], beta, current.dtype, current.device)
    return torch.einsum("t,ntbc->nbc", weights, current)


def running_readout(current: torch.Tensor, beta: float, readout: str, threshold: float, reset: str) -> torch.Tensor:
    """The logits so far after each time bin: the readout layer's current (N, T, B, O) -> (N, T, B, O),
    what a chip stopping after bin t would read. Membrane readout: the mean of u_1..u_t (u ← β·u + I);
    spike readout: the output spikes up to t. The last bin's values are the network's logits (up to
    rounding: `leaky_readout` sums the same terms in another order)."""
    if readout != "membrane":
        return lif(current, beta, threshold, reset).cumsum(1)
    u, steps = torch.zeros_like(current[:, 0]), []
    for t in range(current.shape[1]):
        u = beta * u + current[:, t]
        steps.append(u)
    bins = torch.arange(1, current.shape[1] + 1, dtype=current.dtype, device=current.device)
    return torch.stack(steps, 1).cumsum(1) / bins.view(1, -1, 1, 1)


def decide_early(running: torch.Tensor, confidence: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Early decision on logits so far (..., T, O): the first bin whose softmax confidence reaches
    `confidence`, else the last. Returns (stop (...) long, the logits decided on (..., O))."""
    passed = torch.softmax(running, -1).amax(-1) >= confidence  # (..., T)
    last = torch.full(passed.shape[:-1], running.shape[-2] - 1, dtype=torch.long, device=running.device)
    stop = torch.where(passed.any(-1), passed.to(torch.uint8).argmax(-1), last)
    decided = torch.gather(running, -2, stop[..., None, None].expand(*stop.shape, 1, running.shape[-1]))
    return stop, decided.squeeze(-2)


def perturbed_current(
    h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, noise: LayerNoise | None,
    base: torch.Tensor | None = None,
) -> torch.Tensor:
    """Input current of one layer for every member: (N_in, T, B, in) -> (N, T, B, out).

    N_in is 1 when all members share the input (the first layer): then x·Wᵀ (`base`, which a
    caller evaluating many pair chunks computes once) is shared and each pair adds only its
    correction. With noise for P pairs, N = 2P.
    """
    n_in, T, B, n = h.shape
    if noise is None:
        return torch.matmul(h, weight.t()) + bias if base is None else base
    P, out = noise.pairs, weight.shape[0]
    sign = torch.tensor([1.0, -1.0], dtype=h.dtype, device=h.device).view(1, 2, 1, 1)
    if n_in == 1:  # shared input: one correction per pair, used with both signs
        if base is None:
            base = torch.matmul(h, weight.t()) + bias
        x = h.reshape(T * B, n)
        bias_noise = 0.0 if noise.bias is None else noise.bias[:, None, :]
        if noise.weight_full is not None:  # one GEMM against every pair's noise at once
            delta = (x @ noise.weight_full.reshape(P * out, n).t()).view(T * B, P, out).transpose(0, 1)
            delta = delta + bias_noise if noise.bias is not None else delta.contiguous()
        else:  # (x·B_k)·A_kᵀ: a (TB × n)(n × P·r) product, then P skinny (TB × r)(r × out) ones
            xb = (x @ noise.weight_b.transpose(0, 1).reshape(n, -1)).view(T * B, P, -1).transpose(0, 1)
            delta = torch.baddbmm(bias_noise, xb, noise.weight_a.transpose(1, 2)) if noise.bias is not None \
                else torch.bmm(xb, noise.weight_a.transpose(1, 2))
        current = torch.addcmul(base.view(1, 1, T * B, out), sign, delta.unsqueeze(1))  # (P, 2, TB, out)
        return current.reshape(2 * P, T, B, out)
    # A pair's two members are one contiguous block x_k (2TB × n). Products are formed transposed,
    # (out × n)·x_kᵀ, which BLAS runs about 2x faster than x_k·(n × out) when `out` is small.
    xt = h.view(P, 2 * T * B, n).transpose(1, 2)
    if noise.weight_full is not None:
        base = torch.matmul(weight, xt)  # (P, out, 2TB)
        delta = torch.matmul(noise.weight_full, xt)
    else:  # [W; B_kᵀ]·x_kᵀ in one batched product: reads the spikes once for both terms
        both = torch.matmul(torch.cat([weight.expand(P, out, n), noise.weight_b.transpose(1, 2)], dim=1), xt)
        base, delta = both[:, :out], torch.bmm(noise.weight_a, both[:, out:])
    if noise.bias is not None:
        delta = delta + noise.bias[:, :, None]
    current = torch.addcmul((base + bias[:, None]).view(P, out, 2, T * B), sign.view(1, 1, 2, 1),
                            delta.view(P, out, 2, T * B))
    return current.permute(0, 2, 3, 1).reshape(2 * P, T, B, out)


def pool_frames(frames: torch.Tensor, pool: int) -> torch.Tensor:
    """Average each frame (B, T, C, H, W) over pool x pool pixel blocks (edge blocks partial): a
    fixed, parameter-free input stage that cuts the first layer's inputs pool² times."""
    if frames.dim() != 5:
        raise SpikerollError(f"pool={pool} needs frames shaped (B, T, channels, height, width), got "
                             f"{tuple(frames.shape)}; use --pool 1")
    B, T, C, H, W = frames.shape
    pooled = torch.nn.functional.avg_pool2d(frames.reshape(B * T, C, H, W), pool, ceil_mode=True,
                                            count_include_pad=False)
    return pooled.view(B, T, *pooled.shape[1:])


def input_features(frame_shape: tuple[int, ...], pool: int = 1) -> int:
    """Inputs of the first layer for one time bin of shape (C, H, W) (or any shape when pool is 1)."""
    if pool == 1:
        return math.prod(frame_shape)
    C, H, W = frame_shape
    return C * math.ceil(H / pool) * math.ceil(W / pool)


def init_parameters(sizes: list[int], init_gain: float, seed: int,
                    device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The initial parameters of layers `sizes[0] -> ... -> sizes[-1]`, in `params` order
    (layer{i}.weight (out, in), layer{i}.bias (out,)): weights uniform in ±init_gain/√fan_in
    (PyTorch's Linear default, scaled by init_gain), drawn on the CPU from one generator seeded
    with `seed`, layer by layer; biases zero. SpikingNet and IntegerNet both start from it, so one
    seed gives both the same weights."""
    gen = torch.Generator().manual_seed(seed)
    params: dict[str, torch.Tensor] = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = init_gain / math.sqrt(n_in)
        w = (torch.rand(n_out, n_in, generator=gen) * 2 - 1) * bound
        params[f"layer{i}.weight"] = w.to(device)
        params[f"layer{i}.bias"] = torch.zeros(n_out, device=device)
    return params


class ParameterHolder:
    """What the Trainer needs of any network that keeps its parameters in `self.params` (an ordered
    name -> tensor dict): SpikingNet, IntegerNet and the module adapter share it."""

    params: dict[str, torch.Tensor]

    def load_parameters(self, values) -> None:
        """Copy saved parameter tensors (in `params` order) into this network, in place."""
        for p, value in zip(self.params.values(), values):
            p.copy_(value.to(p.device))

    def shared_input(self, frames: torch.Tensor) -> object | None:
        """What every work unit of a minibatch shares; None: this network computes it per call."""
        return None

    @property
    def num_parameters(self) -> int:
        """Trainable scalars in `params`."""
        return sum(p.numel() for p in self.params.values())

    @property
    def device(self) -> torch.device:
        """Where the parameters live."""
        return next(iter(self.params.values())).device


class SpikingNet(ParameterHolder):
    """LIF layers `sizes[0] -> ... -> sizes[-1]`; the last layer is the readout.

    Each layer: I_t = W·s_t + b (s: the previous layer's spikes, or the input frames);
    v <- β·v + I_t; s = [v ≥ θ]; v <- v − s·θ (reset="subtract") or (1 − s)·v ("zero").
    readout="membrane": a non-spiking leaky output layer u <- β·u + I_t, logits = mean_t u_t.
    readout="spikes": a spiking output layer, logits = spike counts.
    """

    def __init__(
        self,
        sizes: list[int],
        beta: float = 0.9,
        threshold: float = 1.0,
        reset: str = "subtract",
        readout: str = "membrane",
        init_gain: float = 1.0,
        seed: int = 0,
        device: str | torch.device = "cpu",
        pool: int = 1,
    ):
        if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
            raise SpikerollError(f"layer sizes {sizes} are invalid; give at least one positive width")
        if reset not in RESETS:
            raise SpikerollError(f"unknown reset {reset!r}; choose one of {', '.join(RESETS)}")
        if readout not in READOUTS:
            raise SpikerollError(f"unknown readout {readout!r}; choose one of {', '.join(READOUTS)}")
        if not 0.0 <= beta <= 1.0:
            raise SpikerollError(f"beta={beta} is outside [0, 1]; pass a decay factor such as 0.9")
        if threshold <= 0:
            raise SpikerollError(f"threshold={threshold} must be > 0")
        self.sizes = [int(s) for s in sizes]
        self.beta, self.threshold, self.reset, self.readout = beta, threshold, reset, readout
        self.pool = int(pool)
        self.counts_spikes = True  # its forwards take counts= (spikeroll.nets.counts)
        self.use_kernel = True  # False forces the PyTorch path (the reference the kernel is tested against)
        self.params = init_parameters(self.sizes, init_gain, seed, device)

    def layer_params(self):
        """(weight, bias) per layer, first to readout."""
        values = list(self.params.values())
        return list(zip(values[0::2], values[1::2]))

    def _inputs(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, T, ...) -> (1, T, B, features) in the parameters' dtype, pooled first when
        `pool` > 1."""
        dtype = self.params["layer0.weight"].dtype
        if self.pool > 1:
            frames = pool_frames(frames.to(dtype), self.pool)
        # transpose while still in the storage dtype (unpooled uint8 frames are a quarter the
        # bytes), then convert in one contiguous pass
        return frames.flatten(2).transpose(0, 1).contiguous().unsqueeze(0).to(dtype)

    def _fused(self, h: torch.Tensor, record) -> bool:
        """Whether the fused CPU kernel runs this forward (the PyTorch path stays the reference,
        and serves GPUs, autograd and spike recording)."""
        return self.use_kernel and record is None and kernels.applies(
            h.device, h.dtype, autograd=any(p.requires_grad for p in self.params.values()))

    def _run_fused(self, h, noise, first_base=None, spikes=None, per_bin=False) -> torch.Tensor:
        """`_run` with each spiking layer and the next layer's current fused into one kernel pass.
        Currents are laid out (members, features, T, B) here, as the kernel wants them. `spikes`
        (a list) gets each hidden layer's spike count per member (N,) float64."""
        layers = self.layer_params()
        _, T, B, n = h.shape
        x = h.reshape(T * B, n)
        xt = x.t()  # (n, TB): the kernel wants samples last
        current = first_base if first_base is not None else self._first_base(h, fused=True)
        members, first, xb, delta = 1, None, None, None
        if noise is not None:
            first = noise[0]
            P, members = first.pairs, 2 * first.pairs
            if first.weight_full is not None:  # E_k·xᵀ for every pair in one GEMM: (P, H, T, B)
                delta = (first.weight_full.reshape(-1, n) @ xt).view(P, -1, T, B)
            else:  # x·B_k for every pair in one GEMM, then transposed: (P, r, T, B)
                xb = (x @ first.weight_b.transpose(0, 1).reshape(n, -1)).t().contiguous().view(P, -1, T, B)
        for i in range(len(layers) - 1):
            weight, bias = layers[i + 1]
            to_readout = i == len(layers) - 2 and self.readout == "membrane" and not per_bin
            current = kernels.lif_project(
                current, self.beta, self.threshold, self.reset, weight, bias, members,
                layer_noise=first if i == 0 else None, xb=xb if i == 0 else None,
                delta=delta if i == 0 else None, next_noise=None if noise is None else noise[i + 1],
                time_weights=readout_weights(T, self.beta) if to_readout else None, spikes=spikes)
        if per_bin:  # (N, O, T, B) -> (N, B, T, O)
            return self._running(current.permute(0, 2, 3, 1))
        if self.readout == "membrane":
            return current[:, :, 0].transpose(1, 2)  # (N, O, 1, B) -> (N, B, O)
        return lif(current.permute(0, 2, 3, 1), self.beta, self.threshold, self.reset).sum(1)

    def _running(self, current: torch.Tensor) -> torch.Tensor:
        """The readout current (N, T, B, O) -> the logits so far (N, B, T, O) (`running_readout`)."""
        return running_readout(current, self.beta, self.readout, self.threshold, self.reset).transpose(1, 2)

    def _first_base(self, h, fused: bool) -> torch.Tensor:
        """The first layer's shared current x·Wᵀ + b: (1, T, B, H), or (1, H, T, B) for the kernel."""
        weight, bias = self.layer_params()[0]
        if not fused:
            return torch.matmul(h, weight.t()) + bias
        _, T, B, n = h.shape
        # x·Wᵀ then a transposed copy: BLAS runs this ~2x faster than W·xᵀ with x transposed
        return (torch.addmm(bias, h.reshape(T * B, n), weight.t())).t().contiguous().view(1, -1, T, B)

    def _run(self, h, noise, first_base=None, record=None, spikes=None, per_bin=False) -> torch.Tensor:
        """Layers from first to readout; `record` collects each spiking layer's spikes, `spikes`
        (a list) each hidden layer's spike count per member (N,) float64 (counting reads the
        spikes only: every computed value stays the same). `per_bin`: the logits so far after every
        bin, (N, B, T, O), instead of the logits (N, B, O)."""
        if self._fused(h, record):
            return self._run_fused(h, noise, first_base, spikes, per_bin)
        layers = self.layer_params()
        for i, (weight, bias) in enumerate(layers):
            current = perturbed_current(h, weight, bias, None if noise is None else noise[i],
                                        base=first_base if i == 0 else None)
            if i == len(layers) - 1 and per_bin:
                return self._running(current)
            if i == len(layers) - 1 and self.readout == "membrane":
                return leaky_readout(current, self.beta)
            h = lif(current, self.beta, self.threshold, self.reset)
            if record is not None:
                record.append(h)
            if spikes is not None and i < len(layers) - 1:  # the spiking readout drives no synapse
                # per neuron row in float32 (exact: at most `width` ones), then float64 over bins and
                # samples; a float64 sum of the whole tensor converts every element first (~25x slower)
                spikes.append(h.sum(3).sum((1, 2), dtype=torch.float64).cpu())
        return h.sum(1)  # spike-count readout

    def population_logits(
        self, frames: torch.Tensor, noise: Callable[[range], list[LayerNoise]] | list[LayerNoise] | None = None,
        pairs: int | None = None, chunk_pairs: int | None = None, shared=None, counts: list | None = None,
        per_bin: bool = False,
    ) -> torch.Tensor:
        """frames (B, T, ...) shared by all members -> logits (N, B, classes), or with `per_bin` the
        logits so far after every bin (N, B, T, classes; `running_readout`), for early decision.

        `noise` is None (the plain network, N = 1), a list of LayerNoise, or a function from a
        range of pair indices to that list; with a function the population is evaluated in chunks
        of `chunk_pairs` pairs (bounded memory) and the first layer's x·Wᵀ is computed only once,
        or taken from `shared` (`shared_input(frames)`, for callers that evaluate several units).
        `counts` (a list) gets the forward's `SpikeCounts`, per member (spikeroll.nets.counts).
        """
        spikes = None if counts is None else [[] for _ in range(len(self.sizes) - 2)]

        def run(h, layer_noise, first_base=None):
            found = None if counts is None else []
            out = self._run(h, layer_noise, first_base, spikes=found, per_bin=per_bin)
            if counts is not None:
                for i, s in enumerate(found):
                    spikes[i].append(s)
            return out

        def population(h, first_base):
            chunk = chunk_pairs or pairs
            return torch.cat([run(h, noise(range(s, min(s + chunk, pairs))), first_base)
                              for s in range(0, pairs, chunk)])

        if not callable(noise):
            out = run(self._inputs(frames), noise)
        elif shared is not None or (step := self.sample_block(frames)) >= len(frames):
            out = population(*(shared if shared is not None else self.shared_input(frames)))
        else:
            # Long recordings: the minibatch's float inputs and first-layer current, shared by all
            # members, grow with T·B; in blocks of samples they stay within a fixed budget, so a
            # generation's memory does not grow with T. A sample's logits do not depend on the
            # other samples, so the blocks' logits are concatenated; spike counts are added up.
            blocks, totals = [], None
            for start in range(0, len(frames), step):
                blocks.append(population(*self.shared_input(frames[start:start + step])))
                if counts is not None:
                    found = [torch.cat(s) for s in spikes]
                    totals = found if totals is None else [a + b for a, b in zip(totals, found)]
                    for s in spikes:
                        s.clear()
            out = torch.cat(blocks, dim=1)
            if counts is not None:
                for s, total in zip(spikes, totals):
                    s.append(total)
        if counts is not None:
            counts.append(self._counts(frames, [torch.cat(s) for s in spikes]))
        return out

    def sample_block(self, frames: torch.Tensor) -> int:
        """Samples per block of a population forward: all of them unless the minibatch's float
        inputs and first-layer current (each T·(inputs + width)·4 bytes a sample, twice for the
        transposed copies) exceed SHARED_INPUT_BUDGET_BYTES; whole kernel blocks of 64 when above 64."""
        per_sample = 2 * 4 * int(frames.shape[1]) * (self.sizes[0] + self.sizes[1])
        fits = max(1, SHARED_INPUT_BUDGET_BYTES // per_sample)
        if fits >= len(frames):
            return len(frames)
        return fits // 64 * 64 if fits >= 64 else fits

    def _counts(self, frames: torch.Tensor, spikes: list[torch.Tensor]) -> SpikeCounts:
        """SpikeCounts of a forward on `frames` (B, T, ...): input events Σ|v| of the frames as given."""
        x = frames.detach()
        signed = x.is_floating_point() or x.dtype in (torch.int8, torch.int16, torch.int32, torch.int64)
        events = float((x.abs() if signed else x).sum(dtype=torch.float64))  # uint8 frames: no abs pass
        return SpikeCounts(events, spikes, list(self.sizes), int(frames.shape[1]), int(frames.shape[0]))

    def shared_input(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, the first layer's x·Wᵀ + b) of a minibatch that every member sees."""
        h = self._inputs(frames)
        return h, self._first_base(h, fused=self._fused(h, None))

    def logits(self, frames: torch.Tensor, counts: list | None = None) -> torch.Tensor:
        """The plain (unperturbed) network: frames (B, T, ...) -> logits (B, classes); `counts` (a
        list) gets its `SpikeCounts` (one member)."""
        return self.population_logits(frames, None, counts=counts)[0]

    def logits_and_hidden_spikes(self, frames: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The plain network's logits (B, classes) and each hidden layer's spikes (T, B, width) from
        one forward on the PyTorch path, differentiable through the surrogate under autograd (BPTT's
        spike regulariser, spikeroll.es.bptt)."""
        record: list[torch.Tensor] = []
        logits = self._run(self._inputs(frames), None, record=record)
        return logits[0], [spikes[0] for spikes in record[:len(self.sizes) - 2]]

    def spike_trains(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Spikes of every spiking layer of the plain network: a list of (T, B, width)."""
        record: list[torch.Tensor] = []
        self._run(self._inputs(frames), None, record=record)
        return [spikes[0] for spikes in record]
