"""CDT hyperparameters: one dataclass, three named presets.

`paper` is the PLS paper's Table 4 plus OSRL's CDT defaults (a GPU job: about 0.7 M parameters, batch 2048,
100k steps). `cpu` is a small network that trains on one CPU core in under 45 minutes; `cpu-long` is the
same network trained 8x longer (hours, resumable). `tiny` exists for tests and finishes in seconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass
class CDTConfig:
    # Architecture: pre-LN causal transformer, 4 tokens per step (return-to-go, cost-to-go, state, action).
    embed_dim: int = 128
    num_layers: int = 3
    num_heads: int = 8
    context_len: int = 10
    dropout: float = 0.1  # attention, residual and embedding dropout alike (OSRL)
    log_std_bounds: tuple[float, float] = (-5.0, 2.0)

    # Optimization (AdamW with linear warm-up, grad-norm clipping).
    batch_size: int = 2048
    steps: int = 100_000
    learning_rate: float = 1e-4
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 500
    # After the warm-up the learning rate follows a half cosine from learning_rate down to
    # learning_rate * lr_final_ratio at the last step (1.0: constant, as OSRL). Decaying it takes the
    # small-batch presets' gradient noise down at the end instead of leaving the last checkpoint to chance.
    lr_final_ratio: float = 1.0
    grad_clip: float = 0.25
    # Exponential moving average of the weights, evaluated and exported instead of the last step's (0: off,
    # as OSRL). Small batches at a high learning rate (the cpu presets: 48x the gradient noise per step of
    # OSRL's batch 2048 at 1e-4) move the policy a lot between checkpoints; 0.999 averages ~1,000 steps.
    ema_decay: float = 0.0

    # Loss: -(log-likelihood + alpha * entropy) + cost_loss_weight * per-step cost NLL; alpha tuned SAC-style.
    init_temperature: float = 0.1
    temperature_lr: float = 1e-4
    cost_loss_weight: float = 0.02

    # Return conditioning: the network sees reward_scale * R and (cost_offset - G) * cost_scale (OSRL: 0.1,
    # 50, 1). Each feeds a Linear(1, E) token followed by LayerNorm, which is blind to the input's magnitude
    # once |input * w| dwarfs the bias and time embedding: only O(1) inputs keep R and G readable early on.
    reward_scale: float = 0.1
    cost_offset: float = 50.0
    cost_scale: float = 1.0

    # Data: trajectories drawn with weight max(cost_sample_floor, cost_sample_offset - episode cost), so
    # (OSRL, floor 0) never above the offset; augment_percent of extra trajectories come from
    # Pareto-frontier relabelling.
    cost_sample: bool = True
    cost_sample_offset: float = 70.0
    cost_sample_floor: float = 0.0
    augment_percent: float = 0.2
    # Where in a trajectory windows end: with share p > 0, a share p of each costly trajectory's windows
    # end near its cost steps (weight: the per-step costs smoothed over +-10 steps) and the rest anywhere
    # alike; trajectories without cost stay uniform. OSRL's start_sampling (off by default there), here
    # with an exact share per trajectory: the states where a budget is spent or kept are a minority of
    # the data, and they are where G must change the action.
    cost_window_share: float = 0.0
    # A share of every trajectory's windows end in its first start_window_steps steps: the start-up
    # from rest, a twentieth of a 1,000-step episode under uniform draws (at 50 steps), where a walker's
    # gait is chosen and where its falls begin.
    start_window_share: float = 0.0
    start_window_steps: int = 50

    # Bookkeeping.
    num_threads: int = 2  # torch intra-op threads on CPU
    cuda_fast_math: bool = True  # on CUDA: TF32 matmuls and the fused AdamW kernel (ignored on CPU)
    log_every: int = 100
    checkpoint_every: int = 1000
    eval_every: int = 2500
    eval_episodes: int = 2  # per target, batched
    eval_costs: tuple[float, ...] = (20.0, 40.0, 80.0)  # G targets; R is the dataset's best episode return

    def replace(self, **changes) -> CDTConfig:
        """A copy with some fields changed; unknown names are an error, not a silent no-op."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown CDT config field(s) {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> CDTConfig:
        tuples = {f.name for f in dataclasses.fields(cls) if str(f.type).startswith("tuple")}
        return cls(**{k: tuple(v) if k in tuples else v for k, v in values.items()})


# Fields that define the network and what its inputs mean: a resumed run may change anything else
# (steps, learning rate, logging).
FROZEN_ON_RESUME = (
    "embed_dim",
    "num_layers",
    "num_heads",
    "context_len",
    "reward_scale",
    "cost_offset",
    "cost_scale",
)

PRESETS: dict[str, CDTConfig] = {
    "paper": CDTConfig(),
    # One thread: on a 2-core machine shared with other work, 2 torch threads measured 3-5x *slower*
    # (OpenMP barriers starve under contention); batch 256 at 1 thread gave ~3.5 steps/s.
    # R and G inputs scaled to O(1) (R 3000 -> 3, G 0..80 -> 1..-0.6): with OSRL's 0.1 and 1 a 5000-step run
    # told G = 20 from G = 40 apart only by the sign of 50 - G (measured: same reward and cost).
    "cpu": CDTConfig(
        reward_scale=0.001,
        cost_scale=0.02,
        embed_dim=64,
        num_layers=2,
        num_heads=4,
        batch_size=256,
        steps=5000,
        learning_rate=6e-4,
        temperature_lr=1e-3,
        warmup_steps=300,
        num_threads=1,
        checkpoint_every=500,
        eval_every=1000,
        log_every=50,
    ),
    "tiny": CDTConfig(
        embed_dim=16,
        num_layers=1,
        num_heads=2,
        context_len=4,
        batch_size=16,
        steps=30,
        learning_rate=1e-3,
        warmup_steps=5,
        num_threads=1,
        log_every=10,
        checkpoint_every=10,
        eval_every=0,
        eval_episodes=1,
    ),
}


# The cpu network trained 8x longer: hours of one core (about 2.5 h at ~4 steps/s), checkpointed every 1000
# steps so a stopped session resumes (`pls train --resume`).
PRESETS["cpu-long"] = PRESETS["cpu"].replace(steps=40_000, warmup_steps=500, checkpoint_every=1000,
                                             eval_every=5000, log_every=100)


def preset(name: str) -> CDTConfig:
    try:
        return dataclasses.replace(PRESETS[name])
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
