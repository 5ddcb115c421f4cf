"""The integer Loihi network against an independent pure-NumPy reference and hand-worked cases.

The reference below is written from Lava's bit-accurate CPU models (lava-nc/lava
src/lava/proc/lif/models.py `AbstractPyLifModelFixed`, src/lava/proc/dense/models.py
`AbstractPyDenseModelBitAcc`) and from the documented conventions of spikeroll.nets.integer (weight
step, exponents, input pooling, member noise); it shares no code with the model, and runs one
neuron at a time in Python integers.
"""

import math

import numpy as np
import pytest
import torch

from spikeroll.errors import SpikerollError
from spikeroll.es.strategies import EvolutionStrategy
from spikeroll.nets.integer import IntegerNet


def ref_step_exponent(w, bits):
    if bits == 2:
        return round(math.log2(1.4 * np.abs(w).mean()))
    qmax = 2 ** (bits - 1) - 1
    return math.ceil(math.log2(max(w.max() / qmax, w.min() / -(qmax + 1))))


def ref_quantise(w, bits):
    k = ref_step_exponent(w, bits)
    lo, hi = (-1, 1) if bits == 2 else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return np.clip(np.round(w / 2.0**k), lo, hi).astype(np.int64), k


def trunc_decay(x, d):
    """sgn(x)·(|x·d| >> 12), in Python integers."""
    y = abs(x * d) >> 12
    return -y if x < 0 else y


def ref_network(weights, biases, frames, bits, dv, pool=1, readout="membrane", members=None):
    """Every layer's u, v, spikes (S, B, H) of one network, in Python integers.

    weights/biases: latent floats per layer; members: None, or (sign, [(b8 (n, r), afx (m, r))])
    for one member's integer low-rank correction per layer.
    """
    frames = np.asarray(frames, dtype=np.int64)
    B, T = frames.shape[:2]
    if pool > 1:
        C, H, W = frames.shape[2:]
        pooled = np.zeros((B, T, C, -(-H // pool), -(-W // pool)), np.int64)
        for y in range(H):
            for x in range(W):
                pooled[:, :, :, y // pool, x // pool] += frames[:, :, :, y, x]
        frames = pooled
    x = frames.reshape(B, T, -1)
    L = len(weights)
    S = T + L
    inputs = np.zeros((S, B, x.shape[2]), np.int64)
    inputs[:T] = x.transpose(1, 0, 2)
    vth_v = (1 << 14) << 6
    out = []
    for i, (w, bias) in enumerate(zip(weights, biases)):
        w = np.asarray(w, np.float64) / (pool**2 if i == 0 else 1)
        q, k = ref_quantise(w, bits)
        e = k + 14
        bias_v = np.asarray(bias, np.float64) * 2**20
        bexp = next(x for x in range(8) if np.abs(bias_v).max() / 2**x <= 4095) if np.abs(bias_v).max() > 0 else 0
        if members is not None:
            sign, noise = members
            bias_v = bias_v + sign * noise[i][2] * 2**20
        bias_int = (np.clip(np.round(bias_v / 2**bexp), -4096, 4095).astype(np.int64) << bexp)
        m = q.shape[0]
        u = np.zeros((S, B, m), np.int64)
        v = np.zeros((S, B, m), np.int64)
        s = np.zeros((S, B, m), np.int64)
        readout_layer = i == L - 1 and readout == "membrane"
        for b in range(B):
            uu = [0] * m
            vv = [0] * m
            for t in range(S):
                for h in range(m):
                    a = 0
                    if t > 0:
                        acc = int(sum(int(q[h, j]) * int(inputs[t - 1, b, j]) for j in range(q.shape[1])))
                        if members is not None:
                            b8, afx = noise[i][0], noise[i][1]
                            xb = [sum(int(inputs[t - 1, b, j]) * int(b8[j, c]) for j in range(q.shape[1]))
                                  for c in range(b8.shape[1])]
                            acc += sign * (sum(xb[c] * int(afx[h, c]) for c in range(b8.shape[1])) >> 12)
                        a = acc << e if e >= 0 else acc >> -e
                    un = trunc_decay(uu[h], 4096 - (4095 + 1)) + (a << 6)
                    if un > 2**23:
                        un -= 2**24
                    elif un <= -(2**23):
                        un += 2**24
                    vn = trunc_decay(vv[h], 4096 - dv) + un + int(bias_int[h])
                    vn = max(min(vn, 2**23 - 1), -(2**23 - 1))
                    spike = 0
                    if not readout_layer and vn > vth_v:
                        spike, vn = 1, 0
                    uu[h], vv[h] = un, vn
                    u[t, b, h], v[t, b, h], s[t, b, h] = un, vn, spike
        out.append({"u": u, "v": v, "spikes": s})
        inputs = s
    return out


def random_frames(B, T, shape, seed, density=0.3, high=2):
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, high, (B, T, *shape), generator=g)
    return (counts * (torch.rand(B, T, *shape, generator=g) < density)).to(torch.uint8)


@pytest.mark.parametrize("bits", [8, 4, 2])
@pytest.mark.parametrize("readout", ["membrane", "spikes"])
def test_mean_network_matches_reference_on_every_value(bits, readout):
    net = IntegerNet([2 * 4 * 4, 12, 5], bits, beta=0.8, readout=readout, init_gain=6.0, seed=bits, pool=2)
    with torch.no_grad():
        net.params["layer0.bias"].copy_(torch.linspace(-0.3, 0.4, 12))
        net.params["layer1.bias"].copy_(torch.linspace(0.2, -0.1, 5))
    frames = random_frames(3, 6, (2, 8, 8), seed=bits, high=3)
    got = net.trace(frames)
    values = list(net.params.values())
    want = ref_network([w.numpy() for w in values[0::2]], [b.numpy() for b in values[1::2]], frames.numpy(),
                       bits, dv=round(4096 * 0.2), pool=2, readout=readout)
    for g, w in zip(got, want):
        for key in ("u", "v", "spikes"):
            assert np.array_equal(g[key][0].numpy(), w[key]), key
    assert sum(int(w["spikes"].sum()) for w in want[:1]) > 0  # the case exercises spikes
    logits = net.logits(frames)
    if readout == "membrane":
        expected = want[-1]["v"].sum(0) / (6 * 2**20)
    else:
        expected = want[-1]["spikes"].sum(0)
    assert np.allclose(logits.numpy(), expected, rtol=0, atol=1e-6)


def test_population_members_match_reference_with_integer_noise():
    net = IntegerNet([16, 10, 4], 8, beta=0.9, init_gain=5.0, seed=3)
    es = EvolutionStrategy(net.params, population=4, rank=2, seed=7)
    noise = es.ask(0, range(0, 2), 0.3)
    frames = random_frames(2, 5, (16,), seed=1)
    got = net.trace(frames, noise)
    values = list(net.params.values())
    for m in range(4):
        k, sign = m // 2, 1 - 2 * (m % 2)
        per_layer = []
        for i, layer_noise in enumerate(noise):
            w = values[2 * i].numpy()
            _, kexp = ref_quantise(w, 8)
            b8 = np.clip(np.round(layer_noise.weight_b[k].numpy() * 16), -127, 127).astype(np.int64)
            afx = np.round(layer_noise.weight_a[k].double().numpy() * 2.0 ** (8 - kexp)).astype(np.int64)
            per_layer.append((b8, afx, layer_noise.bias[k].double().numpy()))
        want = ref_network([w.numpy() for w in values[0::2]], [b.numpy() for b in values[1::2]], frames.numpy(),
                           8, dv=round(4096 * 0.1), members=(sign, per_layer))
        for g, w in zip(got, want):
            for key in ("u", "v", "spikes"):
                assert np.array_equal(g[key][m].numpy(), w[key]), (m, key)
    logits = net.population_logits(frames, lambda pairs: es.ask(0, pairs, 0.3), 2, 1)
    assert torch.allclose(logits[3], torch.from_numpy(want[-1]["v"].sum(0) / (5 * 2**20)).float(), atol=1e-6)


def one_synapse_net(weight, readout="membrane", beta=0.9):
    """1 -> 1 -> 1: the hidden neuron's voltage is what the hand-worked cases follow."""
    net = IntegerNet([1, 1, 1], 8, beta=beta, readout=readout)
    with torch.no_grad():
        net.params["layer0.weight"].fill_(weight)
        net.params["layer1.weight"].fill_(1.0)
    return net


def test_synaptic_delay_and_rounding_toward_zero_by_hand():
    # w = −2^−14 thresholds: one weight alone quantises to q = −128 at step 2^−21, so weight_exp
    # = −7 and a = (−128·1) >> 7 = −1; u = a << 6 = −64 voltage units. The input spike of step 0
    # arrives at step 1 (delay). dv = 410: v <- sgn(v)·(|v|·3686 >> 12).
    net = one_synapse_net(-(2.0**-14))
    layer = net.layers()[0]
    assert (int(layer["q"]), layer["weight_exp"], layer["dv"]) == (-128, -7, 410)
    frames = torch.tensor([[[1], [0], [0], [0]]], dtype=torch.uint8)  # (B=1, T=4, 1)
    v = net.trace(frames)[0]["v"][0, :, 0, 0].tolist()
    # step 0: nothing has arrived; 1: −64; 2: −(64·3686 >> 12) = −(235904 >> 12) = −57 (floor: −58);
    # 3: −(57·3686 >> 12) = −(210102 >> 12) = −51; 4: −(51·3686 >> 12) = −(187986 >> 12) = −45;
    # 5: −(45·3686 >> 12) = −(165870 >> 12) = −40
    assert v == [0, -64, -57, -51, -45, -40]
    # the readout sees the hidden layer one step later still: nothing spiked, so it stays 0
    assert net.trace(frames)[1]["v"].abs().sum() == 0


def test_positive_spike_reset_and_second_delay_by_hand():
    # w = 1.5 thresholds: q = 96 at step 2^−6 (weight_exp 8); a = 96 << 8 = 24576, u = 24576 << 6
    # = 1572864 = 1.5·2^20 > vth << 6 = 2^20: the neuron spikes at step 1 and resets to 0; the
    # readout (w = 1: q = 64 at 2^−6) receives it at step 2: u = (64 << 8) << 6 = 2^20.
    net = one_synapse_net(1.5)
    frames = torch.tensor([[[1], [0], [0]]], dtype=torch.uint8)
    hidden, out = net.trace(frames)
    assert hidden["u"][0, :, 0, 0].tolist() == [0, 1572864, 0, 0, 0]
    assert hidden["spikes"][0, :, 0, 0].tolist() == [0, 1, 0, 0, 0]
    assert hidden["v"][0, :, 0, 0].tolist() == [0, 0, 0, 0, 0]
    # readout: 0, 0, 2^20, then decays toward zero: 2^20·3686 >> 12 = 943616, 943616·3686 >> 12 = 849162
    assert out["v"][0, :, 0, 0].tolist() == [0, 0, 1048576, 943616, 849162]


def test_saturation_by_hand():
    # w = −3 thresholds: q = −96 at step 2^−5 (weight_exp 9), u = −3·2^20 each step the input is on.
    # v1 = −3145728; v2 = −(3145728·3686 >> 12) − 3145728 = −2830848 − 3145728 = −5976576;
    # v3 = −(5976576·3686 >> 12) − 3145728 = −5378334 − 3145728 = −8524062 -> clipped to −(2^23 − 1)
    net = one_synapse_net(-3.0)
    frames = torch.ones(1, 4, 1, dtype=torch.uint8)
    v = net.trace(frames)[0]["v"][0, :, 0, 0].tolist()
    assert v[:4] == [0, -3145728, -5976576, -(2**23 - 1)]
    assert v[4] == -(2**23 - 1)  # −(8388607·3686 >> 12) − 3145728 = −10694655: clipped again


def test_current_wraps_like_lava():
    # w = 4 thresholds, input 4 events: q = 64 (step 2^−4, weight_exp 10), a = 256 << 10 = 2^18,
    # a << 6 = 2^24 > 2^23: Lava wraps u once, to 2^24 − 2^24 = 0, so nothing reaches v.
    net = one_synapse_net(4.0)
    frames = torch.full((1, 1, 1), 4, dtype=torch.uint8)
    hidden = net.trace(frames)[0]
    assert hidden["u"][0, :, 0, 0].tolist() == [0, 0, 0]


def test_bad_bit_widths_and_inputs():
    with pytest.raises(SpikerollError, match="weight_bits=3"):
        IntegerNet([4, 2], 3)
    net = IntegerNet([4, 2], 8)
    with pytest.raises(SpikerollError, match="integer event counts"):
        net.logits(torch.full((1, 2, 4), 0.5))
    es = EvolutionStrategy(net.params, population=2, rank=None, seed=0)
    with pytest.raises(SpikerollError, match="low-rank"):
        net.population_logits(torch.zeros(1, 2, 4), es.ask(0, range(1), 0.1))


def test_int8_noise_is_shared_with_egg_and_rounds_half_to_even():
    from spikeroll.es import egg
    from spikeroll.nets.integer import int8_noise

    assert egg.int8_noise is int8_noise
    x = torch.tensor([0.0, 1 / 32, 3 / 32, -1 / 32, 7.9, 8.0, -9.0, 0.4])  # ·16: 0, .5, 1.5, −.5, 126.4, 128, −144, 6.4
    assert int8_noise(x).tolist() == [0, 0, 2, 0, 126, 127, -127, 6]
    assert int8_noise(x).dtype == torch.int32 and int8_noise(x, torch.int64).dtype == torch.int64


def test_loihi_layer_optional_arguments_by_hand():
    # one neuron, one member, one sample: base W·s = 1 at every step, weight_exp 14 (a = 2^20 =
    # one threshold), dv = 0: v = 0, 2^20 (not above vth << 6), 2^21 (spikes, reset), ...
    from spikeroll.nets import loihi

    S = 4
    base = np.ones((1, S, 1, 1), np.int32)
    layer = {"weight_exp": 14, "du": 4095, "dv": 0, "vth": 1 << 14}
    out_sum = np.zeros((1, 1, 1), np.int64)
    rec = [np.zeros((1, S, 1, 1), np.int64) for _ in range(3)]
    loihi.loihi_layer(base, np.zeros((1, 1), np.int32), layer, True, out_sum, record=rec)
    assert rec[1][0, :, 0, 0].tolist() == [0, 1 << 20, 0, 1 << 20]
    assert rec[2][0, :, 0, 0].tolist() == [0, 0, 1, 0]
    assert out_sum.tolist() == [[[1]]]
