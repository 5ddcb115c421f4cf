"""Five probes of what limits EGGROLL (two of them hook an ordinary training run).

  average  keeps exponential moving averages of the parameters next to the training iterate (decays
           0.99 .. 0.999; the plain mean until 1/(1 − d) steps have passed) and prints the
           validation/test accuracy of the iterate and of each average every 250 generations.
           Training itself is untouched, so the iterate is exactly the plain run's.
  frozen   resets the first layer to its initialisation after every step, so only the readout
           evolves: how far random first-layer features get.

  sigma    takes a trained run directory and measures how much a population perturbed with each
           σ in 0.05, 0.02, 0.01, 0.005 degrades the network: the members' mean fitness (−cross-
           entropy) on the first 256 training samples, next to the unperturbed network's, and the
           spread of the antithetic differences f(θ+σε) − f(θ−σε) (linear in σ where the ES
           estimate is a local gradient).
  align    takes a trained run directory and, on a few training minibatches, measures the cosine
           between the surrogate gradient (BPTT's) of each weight and (a) the EGGROLL estimate the
           trainer uses, (b) a per-sample-credit estimate built from the same population's
           per-sample fitness differences: Σ_k a_k·Σ_i [Δf_ki/2σ]·(b_kᵀx_i)·x_iᵀ/|x_i|², x_i the
           layer's input in the unperturbed network (first layer, and the membrane readout; rank 1). Not used by
           the trainer: it shows how much of the estimate's noise is in the random input direction b_k.
  refit    takes a trained run directory (membrane readout) and refits only the readout, exactly:
           L2-penalised logistic regression (L-BFGS, from the trained readout) on the time-weighted
           spikes of the last hidden layer over the whole training split, which is what the
           readout's logits are linear in. Prints train/validation/test accuracy of the trained
           readout and of each refit: whether the readout or the hidden features limit the network.

Usage:
  python benchmarks/es_probes.py align RUN_DIR [population] [sigma]
  python benchmarks/es_probes.py sigma RUN_DIR [population]
  python benchmarks/es_probes.py refit RUN_DIR
  python benchmarks/es_probes.py average OUT_DIR [train options as JSON]
  python benchmarks/es_probes.py frozen OUT_DIR '{"init_gain": 4.5}'
The JSON holds TrainConfig fields, e.g. '{"dataset": "nmnist", "data_dir": "../shared/data/nmnist-subset",
"val_ids": "801-1000", "pool": 2, "weight_decay": 0.5, "augment_shift": 1, "batch_size": 256, "generations": 3000}'.
"""
import json
import sys

import torch

from spikeroll import TrainConfig
from spikeroll.api import load_data
from spikeroll.es.fitness import member_fitness
from spikeroll.es.strategies import EvolutionStrategy
from spikeroll.training.callbacks import Callback
from spikeroll.training.evaluation import accuracy
from spikeroll.training.rundir import load_trained
from spikeroll.training.trainer import Trainer

DECAYS = (0.99, 0.995, 0.998, 0.999)
REPORT_EVERY = 250


class ProbeAverage(Callback):
    """Exponential moving averages of the parameters at several decays, evaluated every
    REPORT_EVERY generations beside the iterate."""

    def __init__(self, data):
        self.data, self.averages = data, None

    def on_run_start(self, trainer):
        self.averages = {d: [p.detach().clone() for p in trainer.net.params.values()] for d in DECAYS}

    def on_step_end(self, trainer, record):
        k, net, data = trainer.generation, trainer.net, self.data  # k counts the step just taken
        for d, avg in self.averages.items():
            for a, p in zip(avg, net.params.values()):
                a.lerp_(p.detach(), max(1 - d, 1 / k))
        if k % REPORT_EVERY == 0 or k == trainer.cfg.generations:
            iterate = [p.detach().clone() for p in net.params.values()]
            line = {"generation": k, "iterate": [accuracy(net, data.val), accuracy(net, data.test)]}
            for d, avg in self.averages.items():
                net.load_parameters(avg)
                line[f"average {d}"] = [accuracy(net, data.val), accuracy(net, data.test)]
            net.load_parameters(iterate)
            print(json.dumps(line), flush=True)


class ProbeFrozen(Callback):
    """Keeps the first layer at its initial values: only the later layers learn."""

    def __init__(self, data):
        self.initial = None

    def on_run_start(self, trainer):
        self.initial = {name: p.clone() for name, p in trainer.net.params.items() if name.startswith("layer0.")}

    def on_step_end(self, trainer, record):
        with torch.no_grad():
            for name, value in self.initial.items():
                trainer.net.params[name].copy_(value)


@torch.no_grad()
def probe_sigma(run_dir: str, population: int = 512) -> None:
    cfg, net = load_trained(run_dir)
    data = load_data(cfg, progress=False)
    frames, labels = data.train.frames[:256], data.train.labels[:256]
    plain, _ = member_fitness(net.logits(frames)[None], labels, cfg.temperature)
    es = EvolutionStrategy(net, population, cfg.rank if cfg.strategy == "eggroll" else None, cfg.seed)
    for sigma in (0.05, 0.02, 0.01, 0.005):
        logits = net.population_logits(frames, lambda pairs: es.ask(0, pairs, sigma), es.pairs, 64)  # noqa: B023 - called here
        fitness, _ = member_fitness(logits, labels, cfg.temperature)
        print(json.dumps({"sigma": sigma, "unperturbed_fitness": round(float(plain[0]), 4),
                          "members_mean_fitness": round(float(fitness.mean()), 4),
                          "antithetic_difference_std": round(float((fitness[0::2] - fitness[1::2]).std()), 4)}))


def per_sample_estimate(a, b, diff, x):
    """Σ_k a_k·Σ_i diff_ki·Σ_t (b_kᵀx_it)·x_itᵀ / Σ_t|x_it|²: a (P, out), b (P, in), diff (P, B), x (T, B, in)."""
    T, B, n = x.shape
    flat = x.reshape(T * B, n)
    u = (b @ flat.t()).view(-1, T, B)  # (P, T, B): each pair's input projection b_kᵀx
    weight = diff / (x * x).sum((0, 2)).clamp_min(1e-6)  # (P, B)
    return a.t() @ ((weight[:, None, :] * u).reshape(-1, T * B) @ flat) / len(a)


def readout_features(net, frames: torch.Tensor) -> torch.Tensor:
    """(B, H) time-weighted spikes of the last hidden layer: the membrane readout's logits are
    features·Wᵀ + b·Σ_t w_t (`spikeroll.nets.model.readout_weights`)."""
    from spikeroll.nets.model import readout_weights

    spikes = net.spike_trains(frames)[-1]  # (T, B, H)
    return torch.einsum("t,tbh->bh", readout_weights(len(spikes), net.beta, spikes.dtype), spikes)


def fit_readout(features, labels, weight, bias, bias_scale: float, penalty: float):
    """Minimise cross-entropy(features·Wᵀ + bias_scale·b) + penalty·|W|² over (W, b), from (weight, bias)."""
    w, b = weight.clone().requires_grad_(True), bias.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(features @ w.t() + bias_scale * b, labels) + penalty * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return w.detach(), b.detach()


@torch.no_grad()
def probe_refit(run_dir: str, penalties=(0.0, 1e-4, 1e-3, 1e-2)) -> None:
    from spikeroll.nets.model import readout_weights

    cfg, net = load_trained(run_dir)
    if net.readout != "membrane":
        sys.exit(f"error: refit needs a membrane readout (linear in the spikes); {run_dir} has readout={net.readout!r}")
    data = load_data(cfg, progress=False)
    splits = {name: split for name, split in (("train", data.train), ("val", data.val), ("test", data.test))
              if split is not None and len(split.labels)}
    features = {name: torch.cat([readout_features(net, split.frames[i:i + 1000])
                                 for i in range(0, len(split.labels), 1000)]) for name, split in splits.items()}
    names = list(net.params)
    weight, bias = net.params[names[-2]], net.params[names[-1]]
    scale = float(readout_weights(cfg.time_bins, net.beta).sum())

    def accuracies(w, b):
        return {f"{name}_accuracy": round(float(((features[name] @ w.t() + scale * b).argmax(1)
                                                 == split.labels).float().mean()), 4)
                for name, split in splits.items()}

    print(json.dumps({"readout": "as trained", **accuracies(weight, bias)}))
    for penalty in penalties:
        w, b = fit_readout(features["train"], splits["train"].labels, weight, bias, scale, penalty)
        print(json.dumps({"readout": "refit", "l2_penalty": penalty, **accuracies(w, b)}))


def probe_align(run_dir: str, population: int = 2048, sigma: float = 0.01, repeats: int = 4) -> None:
    from spikeroll.data.minibatch import batch_indices
    from spikeroll.es.strategies import shape_fitness

    cfg, net = load_trained(run_dir)
    data = load_data(cfg, progress=False)
    es = EvolutionStrategy(net, population, 1, cfg.seed)
    names, cosines = list(net.params), {}
    cos = lambda u, v: float(torch.nn.functional.cosine_similarity(u.flatten(), v.flatten(), dim=0))
    for g in range(repeats):
        idx = batch_indices(cfg.seed, g, len(data.train.labels), cfg.batch_size)
        frames, labels = data.train.frames[idx], data.train.labels[idx]
        params = list(net.params.values())
        with torch.enable_grad():
            for p in params:
                p.requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(net.logits(frames) / cfg.temperature, labels)
            ascent = [-grad for grad in torch.autograd.grad(loss, params)]
            for p in params:
                p.requires_grad_(False)
        with torch.no_grad():
            logits = net.population_logits(frames, lambda pairs: es.ask(g, pairs, sigma), es.pairs, 64)  # noqa: B023
            n, b, c = logits.shape
            ce = torch.nn.functional.cross_entropy(logits.reshape(n * b, c) / cfg.temperature, labels.repeat(n),
                                                   reduction="none").view(n, b)
            raw = es.raw_noise(g, range(es.pairs))
            diff = -(ce[0::2] - ce[1::2]) / (2 * sigma * b)  # (P, B) per-sample slopes along each pair's noise
            per_sample = {0: per_sample_estimate(raw[0][0][..., 0], raw[0][1][..., 0], diff, net._inputs(frames)[0])}
            if net.readout == "membrane":  # the readout is linear in its time-weighted input spikes
                per_sample[len(names) - 2] = per_sample_estimate(raw[-2][0][..., 0], raw[-2][1][..., 0], diff,
                                                                 readout_features(net, frames)[None])
            plain = es.gradient(g, shape_fitness(-ce.mean(1), cfg.shaping), sigma)  # member_fitness's fitness
        for i, name in enumerate(names):
            cosines.setdefault(f"{name} eggroll", []).append(cos(plain[i], ascent[i]))
            if i in per_sample:
                cosines.setdefault(f"{name} per-sample", []).append(cos(per_sample[i], ascent[i]))
    for key, values in cosines.items():
        print(json.dumps({"estimate": key, "population": population, "sigma": sigma,
                          "cosine_with_surrogate_gradient": round(sum(values) / len(values), 3),
                          "per_minibatch": [round(v, 3) for v in values]}))


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("average", "frozen", "sigma", "align", "refit"):
        sys.exit(__doc__)
    probe, out = sys.argv[1], sys.argv[2]
    if probe == "align":
        args = sys.argv[3:]
        return probe_align(out, int(args[0]) if args else 2048, float(args[1]) if len(args) > 1 else 0.01)
    if probe == "refit":
        return probe_refit(out)
    if probe == "sigma":
        return probe_sigma(out, int(sys.argv[3]) if len(sys.argv) > 3 else 512)
    cfg = TrainConfig.from_dict(json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}).validate()
    data = load_data(cfg, progress=False)
    probe_callback = (ProbeAverage if probe == "average" else ProbeFrozen)(data)
    trainer = Trainer(cfg, out, data, overwrite=True, callbacks=[probe_callback])
    print(json.dumps({"final": trainer.run(progress=False)}))


if __name__ == "__main__":
    main()
