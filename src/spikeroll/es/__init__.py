"""Evolution strategies: one generation, file by file (the contracts are in `protocols`).

1. `training.trainer` asks its estimator (`estimators.ESEstimator`) for a gradient on the minibatch.
2. `schedules.sigma_at` gives σ; the evaluator (`evaluators.LocalEvaluator`) splits the population into work units.
3. `strategies.EvolutionStrategy.ask` draws each unit's noise from counters (`spikeroll.noise`).
4. The network (`spikeroll.nets.model`, its kernel in `nets.kernels`) runs every member: x·Wᵀ once, plus (x·B)·Aᵀ.
5. `objectives.Objective` scores the members (−cross-entropy by default, `fitness.member_fitness`;
   or accuracy, a SynOp penalty or budget from the forward's spike counts, or a user's function).
6. `strategies.shape_fitness` turns fitness into centered ranks.
7. `strategies.EvolutionStrategy.gradient` regenerates the noise and contracts it into one gradient.
8. The estimator writes −gradient into p.grad; the Trainer's torch.optim optimiser takes the step.
(`egg` moves integer weights by ±1 instead; `bptt` is the surrogate-gradient baseline.)
"""
