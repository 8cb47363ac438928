"""Offline CDT training: the whole algorithm in `train()`, the bookkeeping around it in small helpers.

Loss per batch of windows (valid steps only):
    -(mean log N(a | s, history, R, G) + alpha * entropy) + cost_loss_weight * NLL(cost class)
and alpha = exp(log_temperature) is tuned SAC-style towards a target entropy of -|A|.

The run directory holds checkpoint.pt (the last good state: model, optimizers, RNG, step), progress.csv,
eval.csv, config.json and tb/ (TensorBoard). `resume=True` continues bit-for-bit on CPU. A non-finite loss
stops the run before the optimizer touches the weights, so checkpoint.pt stays the last good one.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from pls_core.cdt.model import build_model_from_facts, gaussian_log_prob_and_entropy
from pls_core.cdt.presets import FROZEN_ON_RESUME, CDTConfig, preset
from pls_core.cdt.sequences import SequenceSampler
from pls_core.progress import progress_bar
from pls_core.tasks import SHIPPED_TASKS

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
PARITY_WINDOWS = 8  # real windows kept in the checkpoint so export can check parity without the dataset


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf; the message says where the last good checkpoint is."""


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Path
    step: int
    wall_time_s: float


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def train(
    dataset_path,
    out_dir,
    *,
    preset_name: str = "cpu",
    seed: int = 0,
    steps: int | None = None,
    resume: bool = False,
    device: str = "auto",
    overrides: dict | None = None,
    progress: bool = True,
) -> TrainResult:
    from pls_core.dataset import load_dataset
    from pls_core.envs import make_env
    from pls_core.tasks import get_task

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / CHECKPOINT
    dataset = load_dataset(dataset_path)
    dataset_sha256 = dataset.sha256
    saved = _load_for_resume(checkpoint_path, dataset_sha256) if resume else None
    config = _resolve_config(saved, preset_name, steps, overrides or {})
    seed = saved["seed"] if saved else seed
    preset_name = saved["preset"] if saved else preset_name

    device = resolve_device(device)
    # The paper preset's step is launch-bound on a GPU (benchmarks/bench_train.py compares): TF32 matmuls
    # and the one-kernel fused AdamW shorten it. CPU runs keep plain fp32 and the default AdamW, so the
    # shipped CPU-trained models reproduce bit for bit.
    fast_cuda = device.type == "cuda" and config.cuda_fast_math
    torch.backends.cuda.matmul.allow_tf32 = fast_cuda
    if device.type == "cpu":
        torch.set_num_threads(config.num_threads)
    torch.manual_seed(seed)
    task = get_task(dataset.attrs["task_id"])
    # Relabelling draws from its own seeded stream, so a resumed run rebuilds the same augmented data.
    sampler = SequenceSampler(dataset, config, task, rng=np.random.default_rng(seed))
    batch_rng = np.random.default_rng(seed + 1)
    facts = saved["facts"] if saved else _model_facts(dataset_sha256, task, sampler, make_env, seed)
    for warning in conditioning_scale_warnings(config, sampler):
        print(f"pls train: warning: {warning}", file=sys.stderr, flush=True)

    model = build_model_from_facts(config, facts).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, betas=config.betas, weight_decay=config.weight_decay,
        fused=fast_cuda,
    )
    if not 0.0 <= config.ema_decay < 1.0:
        raise ValueError(f"ema_decay {config.ema_decay:g}: must be in [0, 1) (0: off; 0.999 averages ~1,000 "
                         "steps)")
    ema = None
    if config.ema_decay > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay))
    log_temperature = torch.tensor(math.log(config.init_temperature), device=device, requires_grad=True)
    temperature_optimizer = torch.optim.Adam([log_temperature], lr=config.temperature_lr, betas=(0.9, 0.999))
    target_entropy = -float(facts["act_dim"])
    step, wall_time = 0, 0.0
    if saved:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        temperature_optimizer.load_state_dict(saved["temperature_optimizer"])
        with torch.no_grad():
            log_temperature.copy_(saved["log_temperature"])
        if ema is not None and "model_ema" in saved:  # else the average starts from the resumed weights
            ema.module.load_state_dict(saved["model_ema"])
            ema.n_averaged.fill_(saved["ema_n_averaged"])
        batch_rng.bit_generator.state = saved["rng"]["numpy"]
        torch.set_rng_state(saved["rng"]["torch"])
        step, wall_time = saved["step"], saved["wall_time_s"]

    (out_dir / "config.json").write_text(
        json.dumps(
            {
                "preset": preset_name,
                "seed": seed,
                "dataset": str(dataset_path),
                "dataset_sha256": dataset_sha256,
                "device": str(device),
                "config": config.to_dict(),
                "relabelled_trajectories": sampler.num_relabelled,
            },
            indent=2,
        )
    )
    progress_log = CsvLog(out_dir / "progress.csv")
    eval_log = CsvLog(out_dir / "eval.csv")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out_dir / "tb"))
    state = {"preset": preset_name, "seed": seed, "facts": facts}

    def save_checkpoint() -> None:
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            raise TrainingDiverged(_diverged_message(step, "non-finite weights", checkpoint_path))
        payload = {
            **state,
            "format": CHECKPOINT_FORMAT,
            "config": config.to_dict(),
            "step": step,
            "wall_time_s": wall_time,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "temperature_optimizer": temperature_optimizer.state_dict(),
            "log_temperature": log_temperature.detach().cpu(),
            "rng": {"numpy": batch_rng.bit_generator.state, "torch": torch.get_rng_state()},
        }
        if ema is not None:  # what pls export and the in-training evaluation use
            payload["model_ema"] = ema.module.state_dict()
            payload["ema_n_averaged"] = int(ema.n_averaged)
        tmp = checkpoint_path.with_suffix(".tmp")
        torch.save(payload, tmp)
        tmp.replace(checkpoint_path)  # atomic: a crash mid-write never destroys the last good checkpoint

    model.train()
    window_start, window_steps = time.perf_counter(), 0
    with progress_bar("train CDT (steps)", config.steps, enabled=progress, initial=step) as bar:
        try:
            while step < config.steps:
                tick = time.perf_counter()
                step += 1
                lr = learning_rate_at(config, step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch = {
                    k: torch.from_numpy(v).to(device)
                    for k, v in sampler.sample(config.batch_size, batch_rng).items()
                }

                mean, log_std, cost_logits = model(
                    batch["states"],
                    batch["actions"],
                    batch["returns_to_go"],
                    batch["costs_to_go"],
                    batch["timesteps"],
                    batch["padding_mask"],
                )
                valid = ~batch["padding_mask"]
                log_prob, entropy = gaussian_log_prob_and_entropy(mean, log_std, batch["actions"])
                log_likelihood = log_prob[valid].mean()
                mean_entropy = entropy[valid].mean()
                cost_nll = F.cross_entropy(cost_logits[valid], batch["cost_labels"][valid])
                alpha = log_temperature.exp().detach()
                loss = -(log_likelihood + alpha * mean_entropy) + config.cost_loss_weight * cost_nll
                if not torch.isfinite(loss):
                    raise TrainingDiverged(_diverged_message(step, f"loss = {loss.item()}", checkpoint_path))

                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                if ema is not None:
                    ema.update_parameters(model)

                temperature_loss = log_temperature.exp() * (mean_entropy - target_entropy).detach()
                temperature_optimizer.zero_grad(set_to_none=True)
                temperature_loss.backward()
                temperature_optimizer.step()

                wall_time += time.perf_counter() - tick
                window_steps += 1
                bar.advance(1)
                if step % config.log_every == 0 or step == config.steps:
                    rate = window_steps / max(time.perf_counter() - window_start, 1e-9)
                    window_start, window_steps = time.perf_counter(), 0
                    row = {
                        "step": step,
                        "loss": loss.item(),
                        "log_likelihood": log_likelihood.item(),
                        "entropy": mean_entropy.item(),
                        "cost_nll": cost_nll.item(),
                        "alpha": alpha.item(),
                        "lr": lr,
                        "grad_norm": grad_norm.item(),
                        "steps_per_s": rate,
                        "train_time_s": wall_time,
                    }
                    progress_log.write(row)
                    for key, value in row.items():
                        if key != "step":
                            writer.add_scalar(f"train/{key}", value, step)
                    bar.note(f"loss {row['loss']:.3f}, alpha {row['alpha']:.3f}")
                if step % config.checkpoint_every == 0 or step == config.steps:
                    save_checkpoint()
                due = config.eval_every and (step % config.eval_every == 0 or step == config.steps)
                if due and task.simulated:  # a robot's own task has no simulator to evaluate in
                    policy = model if ema is None else ema.module
                    policy.eval()
                    for row in _evaluate_in_env(policy, config, state, sampler, out_dir, step, seed):
                        eval_log.write(row)
                        writer.add_scalar(f"eval/reward_G{row['target_cost']:g}", row["reward_return"], step)
                        writer.add_scalar(f"eval/cost_G{row['target_cost']:g}", row["cost_return"], step)
                        bar.print(
                            f"eval step {step}: z=({row['target_reward']:.0f}, {row['target_cost']:.0f}) -> "
                            f"reward {row['reward_return']:.1f}, cost {row['cost_return']:.1f}"
                        )
                    model.train()
        finally:
            writer.close()
    return TrainResult(checkpoint_path, step, wall_time)


def learning_rate_at(config: CDTConfig, step: int) -> float:
    """The learning rate of training step `step` (1-based): linear warm-up, then a half cosine down to
    learning_rate * lr_final_ratio at config.steps (constant when the ratio is 1)."""
    warm = config.learning_rate * min(1.0, step / max(1, config.warmup_steps))
    if config.lr_final_ratio == 1.0 or step <= config.warmup_steps:
        return warm
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps))
    ratio = config.lr_final_ratio + (1.0 - config.lr_final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.learning_rate * ratio


def _resolve_config(saved, preset_name: str, steps: int | None, overrides: dict) -> CDTConfig:
    if saved:
        config = CDTConfig.from_dict(saved["config"])
        changed = [k for k in FROZEN_ON_RESUME if k in overrides and overrides[k] != getattr(config, k)]
        if changed:
            raise ValueError(
                f"cannot change {changed} when resuming: the checkpoint's network was built with other values"
            )
    else:
        config = preset(preset_name)
    config = config.replace(**overrides)
    if not 0.0 < config.lr_final_ratio <= 1.0:
        raise ValueError(f"lr_final_ratio must be in (0, 1] (1 = constant learning rate), got "
                         f"{config.lr_final_ratio!r}; set it with --set lr_final_ratio=0.05")
    if not 0.0 <= config.cost_window_share < 1.0:
        raise ValueError(f"cost_window_share must be in [0, 1) (the share of a costly trajectory's windows "
                         f"that end near its cost steps; 0 = uniform), got {config.cost_window_share!r}; "
                         "set it with --set cost_window_share=0.2")
    if not 0.0 <= config.start_window_share < 1.0 - config.cost_window_share:
        raise ValueError(f"start_window_share must be at least 0 and below 1 - cost_window_share (the share "
                         f"of each trajectory's windows that end in its first steps; 0 = uniform), got "
                         f"{config.start_window_share!r} with cost_window_share "
                         f"{config.cost_window_share!r}; set it with --set start_window_share=0.2")
    if config.start_window_steps < 1:
        raise ValueError(f"start_window_steps must be at least 1 (how many of a trajectory's first steps "
                         f"start_window_share covers), got {config.start_window_steps!r}; set it with "
                         "--set start_window_steps=50")
    return config.replace(steps=steps) if steps is not None else config


def _load_for_resume(path: Path, dataset_sha256: str) -> dict | None:
    if not path.exists():
        return None  # --resume on a fresh directory simply starts
    saved = torch.load(path, map_location="cpu", weights_only=False)
    if saved["facts"]["dataset_sha256"] != dataset_sha256:
        raise ValueError(
            f"{path} was trained on dataset sha256 {saved['facts']['dataset_sha256'][:12]}..., "
            f"not on this one ({dataset_sha256[:12]}...); resume with the same dataset or a new --out"
        )
    return saved


def _seed_reward_range(sampler: SequenceSampler, task) -> list[float] | None:
    """The dataset-derived seed box along R (OptimizerConfig.for_model_stats); None if the data hold too
    few low-cost episodes to derive one."""
    from pls_core.safeopt.config import OptimizerConfigError, seed_reward_range_from_returns

    try:
        return list(seed_reward_range_from_returns(sampler.reward_returns, sampler.cost_returns,
                                                   task.seed_cost_range[1], terminated=sampler.terminated))
    except OptimizerConfigError:
        return None


def conditioning_scale_warnings(config: CDTConfig, sampler: SequenceSampler) -> list[str]:
    """A reward target that would reach the network far below order 1. R enters through a Linear(1, E)
    token whose bias then dwarfs it: a robot whose returns are of order 10, trained with a preset made for
    returns in the thousands (the cpu preset's reward_scale 0.001), learns to ignore R."""
    largest = float(np.abs(sampler.reward_returns).max())
    if largest * config.reward_scale >= 0.1:
        return []
    return [f"the data's largest reward return, {largest:.3g}, enters the network as "
            f"{largest * config.reward_scale:.2g} (reward_scale {config.reward_scale:g}), too small to read; "
            f"for order 1: --set reward_scale={1.0 / max(largest, 1e-9):.2g}"]


def _model_facts(dataset_sha256: str, task, sampler: SequenceSampler, make_env, seed: int) -> dict:
    """What the exported model must know about its task and data (becomes the ONNX contract)."""
    if task.simulated:
        env = make_env(task.task_id)
        low, high = env.action_space.low.tolist(), env.action_space.high.tolist()
        env.close()
    else:
        low, high = list(task.action_low), list(task.action_high)
    obs_mean, obs_std = sampler.observation_stats()
    windows = sampler.sample(PARITY_WINDOWS, np.random.default_rng(seed + 2))
    windows.pop("cost_labels")
    return {
        "task_id": task.task_id,
        "obs_dim": int(sampler.observations.shape[1]),
        "act_dim": int(sampler.actions.shape[1]),
        "act_low": low,
        "act_high": high,
        "episode_len": task.episode_len,
        "obs_mean": obs_mean.tolist(),
        "obs_std": obs_std.tolist(),
        "dataset_sha256": dataset_sha256,
        "dataset_stats": {
            "episodes": len(sampler.starts),
            "reward_return_min": float(sampler.reward_returns.min()),
            "reward_return_max": float(sampler.reward_returns.max()),
            "cost_return_min": float(sampler.cost_returns.min()),
            "cost_return_max": float(sampler.cost_returns.max()),
            # Z0 along R that the data show safe; travels with the model to the ROS supervisor.
            "seed_reward_range": _seed_reward_range(sampler, task),
        },
        "parity_windows": windows,
        # A robot's own task travels with its model (the robot's computer has no description file).
        "task_spec": None if task.task_id in SHIPPED_TASKS else task.to_yaml_text(),
    }


def _evaluate_in_env(model, config, state, sampler, out_dir: Path, step: int, seed: int):
    """Roll the current weights out in the real env through the deployed path (ONNX + PolicyRunner)."""
    from pls_core.export import export_model
    from pls_core.rollout import run_episodes
    from pls_core.runtime import PolicyRunner

    policy_path = out_dir / "eval_policy.onnx"
    export_model(model, config, state["facts"], policy_path,
                 extra_config={"preset": state["preset"], "seed": seed, "step": step})  # as `pls export`
    best_reward = float(sampler.reward_returns.max())
    targets = [(best_reward, cost) for cost in config.eval_costs]
    runner = PolicyRunner(policy_path, num_envs=len(targets) * config.eval_episodes)
    results = run_episodes(
        runner, state["facts"]["task_id"], targets, config.eval_episodes, seed=10_000 + seed
    )
    for target_reward, target_cost in targets:
        mine = [r for r in results if (r.target_reward, r.target_cost) == (target_reward, target_cost)]
        yield {
            "step": step,
            "target_reward": target_reward,
            "target_cost": target_cost,
            "reward_return": float(np.mean([r.reward_return for r in mine])),
            "cost_return": float(np.mean([r.cost_return for r in mine])),
            "episodes": len(mine),
        }


def _diverged_message(step: int, what: str, checkpoint_path: Path) -> str:
    if checkpoint_path.exists():
        last = torch.load(checkpoint_path, map_location="cpu", weights_only=False)["step"]
        kept = f"the last good checkpoint is {checkpoint_path} (step {last}), left untouched"
    else:
        kept = "no checkpoint had been written yet"
    return (
        f"training diverged at step {step} ({what}); stopped. {kept}. Lower the learning rate "
        "(--set learning_rate=...) or check the dataset for extreme values, then --resume."
    )


class CsvLog:
    """Append-only CSV with the header taken from the first row (resumed runs keep appending)."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, row: dict) -> None:
        new = not self.path.exists()
        with self.path.open("a", newline="") as handle:
            out = csv.DictWriter(handle, fieldnames=list(row))
            if new:
                out.writeheader()
            out.writerow(row)
