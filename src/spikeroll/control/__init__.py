"""Spiking controllers for Gymnasium tasks, trained by EGGROLL (extra `control`: gymnasium, Box2D, pygame).

One generation, file by file:

1. `trainer.ControlTrainer` draws the generation's episode seeds (`envs.episode_seeds`, a pure
   function of (seed, generation)) and hands them to the shared `es.estimators.ESEstimator` as the
   minibatch's labels (frames=None).
2. `rollout.RolloutEvaluator` asks the `es.strategies.EvolutionStrategy` for the population's noise
   and lets every member play every seed (`envs.EnvBatch`: one env per (member, episode)).
3. `policy.SpikingPolicy` maps each member's own observations to actions: normalised observations as a
   constant current -> LIF layers -> leaky readout, x·Wᵀ plus (x·B)·Aᵀ as batched products.
4. Fitness is the mean return per member; shaping, the gradient and the torch.optim step are the
   ones classification runs use.

The public functions are in `trainer`: train_control, evaluate_control, play, load_policy,
folded_network, is_control_run; the settings are `config.ControlConfig` (with per-env defaults,
configs/control/*.toml). `remote` plays units of members on Ray workers; `torch_policy.TorchSpikingPolicy`
is the same spiking policy as a plain nn.Module, for other libraries (EvoTorch's GymNE); `export`
states what an exported integer policy needs besides its network (observation statistics, rules).
"""
