"""Integer spiking networks with Loihi's arithmetic (`--neuron loihi --weight-bits 8|4|2`).

The network holds float *latent* parameters, laid out exactly like `SpikingNet.params`
(layer{i}.weight, layer{i}.bias, in threshold units), so that the ES strategies, optimisers and
checkpoints work on it unchanged. Every forward pass first turns them into the chip's integers
(`layers()`): weights q of B bits with a per-layer power-of-two step 2^k (`spikeroll.nets.quant`), a
weight exponent, 13-bit bias mantissas, the 12-bit decay dv; and then runs Loihi's integer dynamics
(`spikeroll.nets.loihi`): int64 arithmetic throughout, never a float imitation of it.

Units: the threshold is vth = 2^14 (`VTH`), so a voltage spikes above vth << 6 = 2^20 and saturates
at ±(2^23 − 1), about ±8 thresholds. A weight step 2^k (threshold units) is the weight exponent
e = k + 14: q·s contributes (q·s << e) << 6 = q·s·2^k thresholds. Biases are in voltage units,
round(b·2^20) = bias_mant << bias_exp.

Input: the frames' event counts (uint8), sum-pooled over pool × pool pixels when pool > 1, enter
the first dense layer as integer graded spikes (Lava's Dense with num_message_bits > 0 computes
W·s for integer s). The latent first-layer weights keep the float network's meaning (they act on
*averaged* pools), so they are divided by pool² before they are quantised. A control policy's
members each send their own inputs (observations quantised to graded spikes, x_m of (M, T, B, n);
`member_logits`): the first layer's accumulation and noise product are then formed per member,
and the latent first-layer weights are divided by that input's scale 2^F (`input_scale`).

Time: each dense layer delays its output by one step, so the network runs T + L steps (L dense
layers) with zero input after the T frames, enough for the last frame to reach the readout.
Readout: `membrane` is a non-spiking Loihi neuron whose voltage, summed over the steps and divided
by T·2^20, is the logit (the float network's time-averaged membrane, in thresholds); `spikes` is
the spike count of a spiking output layer. Reset is always to zero (Loihi's), whatever `reset` says.

Population forward (ES): member m = 2k + j of pair k runs the mean network's integers plus an
integer rank-r correction, as in EGG (nano-egg's `do_mm`): B8 = round(16·B) clipped to int8, and
A·σ/√r (the strategy's scaled factor) in weight steps as fixed point with 8 fractional bits (afx).
The member's dense accumulation is W·s + (−1)^j·(((s·B8)·afxᵀ) >> 12): the shared W·s is computed
once and each member adds only its correction, so no member weight matrix is ever formed.

Autograd (the BPTT baselines): `logits` runs a float *shadow* of the same network (same delays,
decay, zero reset, saturation, strict threshold with the surrogate derivative), with weights
fake-quantised straight through (QAT) or left float (`ptq=True`: post-training quantisation, the
integer network is then evaluated). Evaluation always runs the integer network.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from spikeroll.atomic import save_json
from spikeroll.errors import SpikerollError
from spikeroll.nets import loihi, quant
from spikeroll.nets.counts import SpikeCounts
from spikeroll.nets.model import READOUTS, FastSigmoidSpike, LayerNoise, ParameterHolder, init_parameters

VTH = 1 << 14
THRESHOLD_V = VTH << loihi.ACT_SHIFT  # 2^20: one threshold in voltage units
DU_NO_FILTER = 4095  # u holds one step's input only: the float network has no current filter
NOISE_FIXED = 4  # B8 = round(B·2^4), as nano-egg's int8 noise
AFX_FIXED = 8  # fractional bits of the correction's A factor
INT8_MAX = 127


def int8_noise(x: torch.Tensor, dtype: torch.dtype = torch.int32) -> torch.Tensor:
    """The int8 noise of a standard normal tensor, clamp(round(x·2^4), −127, 127), as `dtype`: the
    B8 the integer forward applies (and EGG's A8, B8: `spikeroll.es.egg`)."""
    return torch.clamp(torch.round(x * 2**NOISE_FIXED), -INT8_MAX, INT8_MAX).to(dtype)


class IntegerNet(ParameterHolder):
    """`sizes[0] -> ... -> sizes[-1]` Loihi LIF layers with B-bit weights; the last is the readout.

    Each layer, in integers (`spikeroll.nets.loihi`), with a = (q·s of the previous step) << e << 6:
    u <- a wrapped into 24 bits (du = 4095: no current filter);
    v <- clip(sgn(v')·(|v'| >> 12) + u + bias, ±(2^23 − 1)), v' = v·(4096 − dv);
    s = [v > vth << 6]; v <- 0 where s. The readout is non-spiking
    (`membrane`: logits = Σ_t v_t / (T·2^20)) or spiking (`spikes`: logits = spike counts).

    Offers what the Trainer and evaluators use of `SpikingNet`: params, sizes, device, logits,
    population_logits, load_parameters, num_parameters, spike_trains.
    """

    def __init__(self, sizes, weight_bits: int, beta: float = 0.9, readout: str = "membrane",
                 init_gain: float = 1.0, seed: int = 0, device="cpu", pool: int = 1, ptq: bool = False,
                 frozen_step: float | None = None, input_scale: float | None = None):
        quant.check_bits(weight_bits)
        loihi.require_kernel()
        if torch.device(device).type != "cpu":
            raise SpikerollError("--neuron loihi runs its integer kernel on the CPU; use --device cpu")
        if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
            raise SpikerollError(f"layer sizes {sizes} are invalid; give at least one positive width")
        if readout not in READOUTS:
            raise SpikerollError(f"unknown readout {readout!r}; choose one of {', '.join(READOUTS)}")
        self.sizes, self.bits, self.beta, self.readout = [int(s) for s in sizes], int(weight_bits), beta, readout
        self.pool, self.ptq = int(pool), ptq
        # integer input = latent input × input_scale: pool² for sum-pooled frames (the latent weights
        # act on averaged pools); 2^F for a control policy's quantised observations (spikeroll.control.policy)
        self.input_scale = self.pool**2 if input_scale is None else input_scale
        self.counts_spikes = True  # its forwards take counts= (the chip's messages, spikeroll.nets.counts)
        self.dv = quant.decay_from_beta(beta)
        self.params = init_parameters(self.sizes, init_gain, seed)  # as SpikingNet: same draws for the same seed
        # The integer-native (EGG) estimator moves integers by ±1 at a fixed step: with frozen_step,
        # every layer's step is the power of two nearest it (in the latent units; for the first layer
        # that is frozen_step / input_scale per input event), fixed for the whole run.
        self.frozen = None
        if frozen_step is not None:
            self.frozen = [round(math.log2(frozen_step / (self.input_scale if i == 0 else 1)))
                           for i in range(len(self.sizes) - 1)]

    # the Trainer's interface -----------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Always the CPU, where the integer kernel runs."""
        return torch.device("cpu")

    def weights(self) -> list[torch.Tensor]:
        """Latent weights per layer in the units of the integer input (first layer ÷ input_scale)."""
        values = list(self.params.values())
        return [w / self.input_scale if i == 0 else w for i, w in enumerate(values[0::2])]

    def _step(self, i: int, w: torch.Tensor) -> int:
        return self.frozen[i] if self.frozen is not None else quant.step_exponent(w, self.bits)

    # integers ---------------------------------------------------------------------------------------
    def layers(self) -> list[dict]:
        """The chip's integers of every layer: q (out, in) int32, step exponent k (weights are q·2^k
        thresholds), weight_exp = k + 14, bias_mant/bias_exp, and the neuron's du, dv, vth."""
        out = []
        biases = list(self.params.values())[1::2]
        for i, (w, b) in enumerate(zip(self.weights(), biases)):
            k = self._step(i, w)
            bias_v = b.detach().double() * THRESHOLD_V
            bexp = quant.bias_exponent(bias_v)
            out.append({"q": quant.quantise(w, k, self.bits), "k": k, "weight_exp": k + 14,
                        "bias_mant": quant.quantise_bias(bias_v, bexp), "bias_exp": bexp,
                        "du": DU_NO_FILTER, "dv": self.dv, "vth": VTH})
        return out

    def integer_inputs(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, T, ...) of event counts -> (T, B, features) int32, sum-pooled when pool > 1."""
        x = frames.detach()
        if x.is_floating_point() and not bool((x == x.round()).all()):
            raise SpikerollError("--neuron loihi needs integer event counts as input (uint8 frames); "
                                 "the frames given hold fractional values")
        if self.pool > 1:
            if x.dim() != 5:
                raise SpikerollError(f"pool={self.pool} needs frames shaped (B, T, channels, height, width), "
                                     f"got {tuple(x.shape)}; use --pool 1")
            B, T, C, H, W = x.shape
            x = torch.nn.functional.avg_pool2d(x.reshape(B * T, C, H, W).double(), self.pool, ceil_mode=True,
                                               divisor_override=1)  # sums of small integers: exact
            x = x.view(B, T, -1)
        return x.flatten(2).transpose(0, 1).round().to(torch.int32).contiguous()

    def _layer_noise(self, noise: LayerNoise, layer: dict, scale: float):
        """Integer noise of one layer: B8 (P, in, r) int64, afx (P, out, r) int64."""
        if noise.weight_full is not None:
            raise SpikerollError("--neuron loihi supports low-rank noise only; use --strategy eggroll or egg "
                                 "(or bptt), not openes")
        b8 = int8_noise(noise.weight_b, torch.int64)
        afx = torch.round(noise.weight_a.double() * scale * 2.0 ** (AFX_FIXED - layer["k"])).to(torch.int64)
        return b8, afx

    def _member_bias(self, i: int, layer: dict, noise: LayerNoise | None, members: int) -> torch.Tensor:
        """Bias of every member in voltage units (M, out) int32: mean bias ± σ·e, each quantised."""
        b = list(self.params.values())[2 * i + 1].detach().double()
        if noise is None or noise.bias is None:
            mant = layer["bias_mant"].expand(members, -1)
        else:
            e = noise.bias.double()
            both = torch.stack([b + e, b - e], 1).reshape(members, -1)  # member 2k: +, 2k+1: −
            mant = quant.quantise_bias(both * THRESHOLD_V, layer["bias_exp"])
        return (mant << layer["bias_exp"]).to(torch.int32).contiguous()

    def member_terms(self, layers: list[dict], noise: list[LayerNoise] | None) -> list[tuple]:
        """What every member adds to each layer, computed once per noise draw: per layer (bias (M, H)
        int32 in voltage units, B8 (P, in, r) int64 or None, afx (P, H, r) as numpy int64 or None)."""
        members = 1 if noise is None else 2 * noise[0].pairs
        terms = []
        for i, layer in enumerate(layers):
            bias = self._member_bias(i, layer, None if noise is None else noise[i], members).numpy()
            if noise is None:
                terms.append((bias, None, None))
                continue
            b8, afx = self._layer_noise(noise[i], layer, 1.0 / self.input_scale if i == 0 else 1.0)
            terms.append((bias, b8, afx.numpy()))
        return terms

    def _forward_int(self, x: torch.Tensor, noise: list[LayerNoise] | None, record: list | None = None,
                     layers: list[dict] | None = None, first: np.ndarray | None = None, spikes: list | None = None,
                     terms: list[tuple] | None = None):
        """x (T, B, n) int32, shared by every member, or (M, T, B, n), each member's own (M = 2·pairs,
        or 1 without noise) -> (M, B, classes) int64 (summed readout voltage, or spike counts).
        `layers`, `first` (the shared first-layer accumulation, `_first_base`) and `terms`
        (`member_terms`) may be passed in when many calls share them; `spikes` (a list) gets each
        hidden layer's spike count per member (M,) float64, counted in the kernel."""
        layers = layers or self.layers()
        terms = terms or self.member_terms(layers, noise)
        own = x.dim() == 4
        T, B, n = x.shape[-3:]
        L = len(layers)
        S = T + L
        M = 1 if noise is None else 2 * noise[0].pairs
        if own and x.shape[0] != M:
            raise SpikerollError(f"per-member inputs hold {x.shape[0]} members, the noise {M}")
        base_np = (self._member_base(x, layers) if own else self._first_base(x, layers)) if first is None else first
        layer_noise = None  # (xb, per_member, afx, shift) of the layer's input, see loihi.loihi_layer
        if noise is not None:
            b8, afx = terms[0][1], terms[0][2]
            if own:  # member m's x_m·B8 of its pair k = m // 2
                xb = np.zeros((M, S, b8.shape[2], B), np.int64)
                xb[:, :T] = torch.einsum("mtbn,mnr->mtrb", x.to(torch.int64),
                                         b8.repeat_interleave(2, dim=0)).numpy()
            else:
                P, r = b8.shape[0], b8.shape[2]
                xb = np.zeros((P, S, r, B), np.int64)
                flat = loihi.sparse_matmul(x.reshape(T * B, n).numpy(),
                                           b8.to(torch.int32).permute(1, 0, 2).reshape(n, P * r).numpy())
                xb[:, :T] = flat.reshape(T, B, P, r).transpose(2, 0, 3, 1)
            layer_noise = (xb, own, afx, NOISE_FIXED + AFX_FIXED)
        for i, layer in enumerate(layers):
            last = i == L - 1
            H = layer["q"].shape[0]
            bias = terms[i][0]
            spiking = not last or self.readout == "spikes"
            project = next_noise = None
            if not last:
                nxt = layers[i + 1]
                qt_next = nxt["q"].t().contiguous().to(torch.int64).numpy()
                raw_next = np.zeros((M, S, nxt["q"].shape[0], B), np.int32)
                b_next = xb_next = None
                if noise is not None:
                    b8n, afx_n = terms[i + 1][1], terms[i + 1][2]
                    b_next = b8n.numpy()
                    xb_next = np.zeros((M, S, b8n.shape[2], B), np.int64)
                    next_noise = (xb_next, True, afx_n, NOISE_FIXED + AFX_FIXED)
                project = (qt_next, b_next, raw_next, xb_next)
            out_sum = np.zeros((M, H, B), np.int64)
            rec = [np.zeros((M, S, H, B), np.int64) for _ in range(3)] if record is not None else None
            counts = np.zeros((M, -(-B // loihi.BLOCK)), np.int64) if spikes is not None and not last else None
            loihi.loihi_layer(base_np, bias, layer, spiking, out_sum, layer_noise, project, rec, counts)
            if counts is not None:
                spikes.append(torch.from_numpy(counts.sum(1)).double())
            if record is not None:
                record.append({key: torch.from_numpy(value).transpose(2, 3)  # (M, S, B, H)
                               for key, value in zip(("u", "v", "spikes"), rec)})
            if last:
                return torch.from_numpy(out_sum).transpose(1, 2)  # (M, B, classes)
            base_np, layer_noise = raw_next, next_noise

    def _member_base(self, x: torch.Tensor, layers: list[dict]) -> np.ndarray:
        """Per-member first-layer accumulation x_m·qᵀ at each of the T + L steps: (M, S, H, B) int32."""
        M, T, B, _ = x.shape
        acc = torch.einsum("mtbn,hn->mthb", x.to(torch.int64), layers[0]["q"].to(torch.int64)).numpy()
        if acc.size and np.abs(acc).max() >= 2**31:
            raise SpikerollError("the first layer's input sum overflows 32 bits (inputs too large for the "
                                 "chip's accumulator); quantise the inputs to fewer bits")
        base = np.zeros((M, T + len(layers), acc.shape[2], B), np.int32)
        base[:, :T] = acc
        return base

    def _first_base(self, x: torch.Tensor, layers: list[dict]) -> np.ndarray:
        """The first layer's shared accumulation x·qᵀ at each of the T + L steps: (1, S, H, B) int32."""
        T, B, n = x.shape
        q0 = layers[0]["q"]
        acc = loihi.sparse_matmul(x.reshape(T * B, n).numpy(), q0.t().contiguous().numpy())
        if acc.size and np.abs(acc).max() >= 2**31:
            raise SpikerollError("the first layer's input sum overflows 32 bits (event counts too large for "
                                 "the chip's accumulator); bin fewer events per frame or use --pool 1")
        base = np.zeros((1, T + len(layers), q0.shape[0], B), np.int32)
        base[0, :T] = acc.reshape(T, B, -1).transpose(0, 2, 1)
        return base

    def _to_logits(self, out: torch.Tensor, T: int) -> torch.Tensor:
        """Integer readout -> float logits: summed voltage in thresholds per frame, or spike counts."""
        if self.readout == "spikes":
            return out.float()
        return (out.double() / (T * THRESHOLD_V)).float()

    # forwards --------------------------------------------------------------------------------------
    def _autograd(self) -> bool:
        return torch.is_grad_enabled() and any(p.requires_grad for p in self.params.values())

    def logits(self, frames: torch.Tensor, counts: list | None = None) -> torch.Tensor:
        """The mean network: frames (B, T, ...) -> logits (B, classes); the integer network, except
        under autograd (BPTT baselines), where the float shadow runs (and `counts` stays empty)."""
        if self._autograd():
            return self.shadow_logits(frames)
        return self.population_logits(frames, None, counts=counts)[0]

    def population_logits(self, frames, noise=None, pairs: int | None = None, chunk_pairs: int | None = None,
                          counts: list | None = None):
        """As `SpikingNet.population_logits`: logits (N, B, classes) of every member, evaluated in
        chunks of pairs (the integer kernel's per-member buffers bound the chunk further). `counts`
        (a list) gets the chip's own `SpikeCounts`: spikes per hidden layer, and the input's graded
        messages (one per nonzero entry of the sum-pooled input)."""
        x = self.integer_inputs(frames)
        T, B, _ = x.shape
        found = None if counts is None else []
        if not callable(noise):
            out = self._to_logits(self._forward_int(x, noise, spikes=found), T)
            parts = None if found is None else [found]
        else:
            layers = self.layers()  # quantised once for all chunks
            first = self._first_base(x, layers)
            # live int64 buffers of one pair: the next layers' accumulations and x·B8 of both members
            per_pair = 2 * (T + len(self.sizes)) * B * (max(self.sizes[2:] + [1]) + 4) * 8
            chunk = max(1, min(chunk_pairs or pairs, (64 << 20) // per_pair))
            outs, parts = [], None if counts is None else []
            for s in range(0, pairs, chunk):
                spikes = None if counts is None else []
                outs.append(self._to_logits(self._forward_int(x, noise(range(s, min(s + chunk, pairs))), None,
                                                              layers, first, spikes), T))
                if parts is not None:
                    parts.append(spikes)
            out = torch.cat(outs)
        if counts is not None:
            spikes = [torch.cat([p[i] for p in parts]) for i in range(len(self.sizes) - 2)]
            counts.append(SpikeCounts(float((x != 0).sum()), spikes, list(self.sizes), T, B))
        return out

    def member_logits(self, x: torch.Tensor, noise: list[LayerNoise] | None = None,
                      layers: list[dict] | None = None, terms: list[tuple] | None = None) -> torch.Tensor:
        """Logits (M, B, classes) of M members for their own integer inputs x (M, T, B, n) (graded
        spikes, e.g. a control policy's quantised observations): M = 2·pairs of `noise`, or 1
        without. `layers` (`layers()`) and `terms` (`member_terms`) may be computed once and reused."""
        return self._to_logits(self._forward_int(x.to(torch.int32), noise, layers=layers, terms=terms), x.shape[1])

    def trace(self, frames: torch.Tensor, noise: list[LayerNoise] | None = None) -> list[dict]:
        """u, v and spikes of every layer at every step (M, S, B, H) int64: the values the tests
        check against an independent reference."""
        record: list = []
        self._forward_int(self.integer_inputs(frames), noise, record)
        return record

    def spike_trains(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Spikes of every spiking layer of the plain integer network: a list of (S, B, width)."""
        return [layer["spikes"][0].float() for layer in self.trace(frames)[:-1]]

    def shadow_logits(self, frames: torch.Tensor) -> torch.Tensor:
        """Differentiable float stand-in of the integer network, in threshold units (BPTT only)."""
        h = self.integer_inputs(frames).float()  # (T, B, n)
        T = h.shape[0]
        L = len(self.sizes) - 1
        h = torch.cat([h, h.new_zeros(L, *h.shape[1:])])  # T + L steps
        beta = 1.0 - self.dv / 4096
        vmax = (loihi.UV_MAX - 1) / THRESHOLD_V
        values = list(self.params.values())
        for i, (w, b) in enumerate(zip(self.weights(), values[1::2])):
            if not self.ptq:
                w = quant.fake_quantise(w, self._step(i, w), self.bits)
            current = torch.matmul(h, w.t())
            current = torch.cat([current.new_zeros(1, *current.shape[1:]), current[:-1]])  # one-step delay
            v, out = torch.zeros_like(current[0]), []
            last = i == L - 1
            for t in range(current.shape[0]):
                v = torch.clamp(beta * v + current[t] + b, -vmax, vmax)
                if last and self.readout == "membrane":
                    out.append(v)
                    continue
                s = FastSigmoidSpike.apply(v - 1.0)
                v = v * (1.0 - s)
                out.append(s)
            h = torch.stack(out)
        return h.sum(0) / T if self.readout == "membrane" else h.sum(0)


# export -------------------------------------------------------------------------------------------
EXPORT_FORMAT = "spikeroll-loihi/1"


def integer_export(net, conventions: dict | None = None) -> dict:
    """Everything that defines an integer network, as plain integers and numpy arrays.

    The one description both exporters read: `loihi_parameters` (a dictionary a Lava user can
    load) and the NIR exporter of integer networks (spikeroll.interop.nir), which stores the integer
    weights exactly with these conventions in its metadata. Per layer: q (out, in) int32, the
    weight step exponent k (a weight is q·2^k thresholds), weight_exp = k + 14, bias_mant (out,)
    int64 and bias_exp, du, dv, vth. `conventions` replaces or adds rules in words, for networks
    fed otherwise than by event frames (a control policy's observations: spikeroll.control.export).
    """
    if not isinstance(net, IntegerNet):
        raise SpikerollError("only integer networks export Loihi parameters; train with --neuron loihi "
                             "--weight-bits 8 (a float network has no integer weights to export)")
    return {
        "format": EXPORT_FORMAT, "weight_bits": net.bits, "readout": net.readout, "pool": net.pool,
        "sizes": list(net.sizes),
        "layers": [{**{k: v for k, v in layer.items() if k not in ("q", "bias_mant")},
                    "q": layer["q"].numpy().astype(np.int32), "bias_mant": layer["bias_mant"].numpy().astype(np.int64)}
                   for layer in net.layers()],
        "conventions": {
            "threshold": "spike where v > vth << 6, then v = 0 (Lava PyLifModelBitAcc)",
            "weights": "a dense layer sends (q·s) << weight_exp (>> -weight_exp when negative, flooring) "
                       "one step later; q·2^k thresholds per event",
            "bias": "bias_mant << bias_exp, added to v every step",
            "decay": "u, v <- sgn(x)·(|x|·(4096 − d) >> 12); du counts ds_offset = 1, so du = 4095 clears u",
            "state": "u, v 24-bit; v clipped to ±(2^23 − 1); u wrapped once into 24 bits as Lava does",
            "input": "event counts per time bin (sum-pooled over pool × pool pixels) as graded spikes",
            "time": "T + L steps per sample (L dense layers), zero input after the T frames",
            "readout": "membrane: logits = Σ_t v_t / (T·2^20) of a non-spiking output layer; "
                       "spikes: output spike counts",
            **(conventions or {}),
        },
    }


def loihi_parameters(net, conventions: dict | None = None) -> dict:
    """Lava-loadable parameters per layer: Dense(weights=..., weight_exp=..., num_weight_bits=...,
    num_message_bits=...) and LIF(du=..., dv=..., vth=..., bias_mant=..., bias_exp=...).

    Lava's bit-accurate Dense clips weights to 8 bits plus sign and, for mixed-sign matrices,
    truncates num_truncate_bits = 9 − num_weight_bits low bits (lava src/lava/utils/weightutils.py
    `truncate_weights`, `clip_weights`). So q is handed over as q << (9 − B) with weight_exp lowered
    by the same amount: Lava's accumulation 2^(9−B)·(q·s) shifted by weight_exp − (9 − B) is exactly
    (q·s) shifted by weight_exp, for either sign of the exponent. `conventions`: as in `integer_export`.
    """
    spec = integer_export(net, conventions)
    bits, layers = spec["weight_bits"], []
    shift = 9 - bits
    for i, layer in enumerate(spec["layers"]):
        last = i == len(spec["layers"]) - 1
        layers.append({
            "dense": {"weights": (layer["q"].astype(np.int64) << shift).tolist(),
                      "weight_exp": layer["weight_exp"] - shift, "num_weight_bits": bits, "sign_mode": "mixed",
                      "num_message_bits": 8 if i == 0 else 0},
            "lif": {"du": layer["du"], "dv": layer["dv"], "bias_mant": layer["bias_mant"].tolist(),
                    "bias_exp": layer["bias_exp"],
                    # a non-spiking readout: the largest 17-bit vth (v can exceed it only at saturation)
                    "vth": (1 << 17) - 1 if last and spec["readout"] == "membrane" else layer["vth"]},
            "q": layer["q"].tolist(), "k": layer["k"],
        })
    return {"format": spec["format"], "weight_bits": bits, "readout": spec["readout"], "pool": spec["pool"],
            "sizes": spec["sizes"], "layers": layers, "conventions": spec["conventions"]}


def export_loihi(net, path, conventions: dict | None = None, metadata: dict | None = None) -> None:
    """Write `loihi_parameters(net, conventions)` to path: .json (lists), or .npz (one array per
    value, the conventions as a JSON string under "meta"). `metadata` (plain JSON values) adds
    top-level entries beside them, e.g. a control policy's observation statistics."""
    path = Path(path)
    if path.suffix not in (".json", ".npz"):
        raise SpikerollError(f"cannot write Loihi parameters to {path.name}: choose a .json or .npz file name")
    params = loihi_parameters(net, conventions)
    params.update(metadata or {})
    if path.suffix == ".json":
        save_json(path, params)
        return
    arrays = {}
    for i, layer in enumerate(params["layers"]):
        for group in ("dense", "lif"):
            for key, value in layer[group].items():
                if not isinstance(value, str):
                    arrays[f"layer{i}.{group}.{key}"] = np.asarray(value)
        arrays[f"layer{i}.q"] = np.asarray(layer["q"], np.int32)
        arrays[f"layer{i}.k"] = np.asarray(layer["k"])
    meta = {k: v for k, v in params.items() if k != "layers"}
    np.savez(path, meta=np.asarray(json.dumps(meta)), **arrays)
