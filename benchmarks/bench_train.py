"""CDT training throughput (gradient steps per second) for the `cpu` and `paper` presets, in one run.

Each preset takes a few full training steps through pls_core.cdt.trainer.train (batch sampling, forward,
backward, AdamW, temperature update) on a synthetic HalfCheetah-sized dataset; the content of the data does
not change the cost of a step. The rate comes from the trainer's own progress.csv and leaves out the first
step (one-time warm-up). The paper preset (batch 2048) is a GPU job: on CPU a step takes many seconds.
On CUDA the paper preset also runs with `cuda_fast_math` off (plain fp32 matmuls, the default AdamW), and
the last line gives the speed-up of the default (TF32, fused AdamW) over it, measured in the same run.

    python benchmarks/bench_train.py [--steps-cpu 40] [--steps-paper 3] [--threads N] [--device auto]
"""

from __future__ import annotations

import argparse
import atexit
import csv
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pls_core.cdt.model import build_model
from pls_core.cdt.presets import preset
from pls_core.cdt.trainer import resolve_device, train
from pls_core.dataset import OfflineDataset, save_dataset

OBS, ACT = 17, 6


def synthetic_dataset(path: Path, episodes: int = 4, length: int = 1000) -> Path:
    rng = np.random.default_rng(0)
    n = episodes * length
    timeouts = np.zeros(n, dtype=bool)
    timeouts[length - 1 :: length] = True
    save_dataset(
        path,
        OfflineDataset(
            observations=rng.normal(size=(n, OBS)),
            next_observations=rng.normal(size=(n, OBS)),
            actions=rng.uniform(-1, 1, size=(n, ACT)),
            rewards=rng.uniform(0, 3, size=n),
            costs=(rng.random(n) < 0.05).astype(np.float32),
            terminals=np.zeros(n, dtype=bool),
            timeouts=timeouts,
            attrs={"task_id": "SafetyHalfCheetahVelocity-v1"},
        ),
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps-cpu", type=int, default=40)
    parser.add_argument("--steps-paper", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: each preset's own)"
    )
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-train-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    dataset = synthetic_dataset(root / "data.hdf5")
    print(f"torch {torch.__version__}, device {args.device}")
    print(
        f"{'preset':11s}{'params':>10s}{'batch':>7s}{'threads':>9s}{'steps':>7s}{'steps/s':>10s}{'s/step':>9s}"
        f"{'preset steps':>14s}{'est. hours':>12s}"
    )
    on_cuda = resolve_device(args.device).type == "cuda"
    runs = [("cpu", "cpu", args.steps_cpu, {}), ("paper", "paper", args.steps_paper, {})]
    if on_cuda:
        runs.append(("paper-fp32", "paper", args.steps_paper, {"cuda_fast_math": False}))
    rates = {}
    for label, name, steps, extra in runs:
        config = preset(name)
        overrides = {"log_every": 1, "eval_every": 0, "checkpoint_every": 10**9, **extra}
        if args.threads:
            overrides["num_threads"] = args.threads
        start = time.perf_counter()
        train(
            dataset,
            root / label,
            preset_name=name,
            steps=steps + 1,
            device=args.device,
            overrides=overrides,
            progress=False,
        )
        with (root / label / "progress.csv").open() as handle:
            times = [float(row["train_time_s"]) for row in csv.DictReader(handle)]
        rate = rates[label] = (len(times) - 1) / (times[-1] - times[0])  # steps 2..N+1
        params = sum(
            p.numel()
            for p in build_model(
                config, OBS, ACT, 1000, np.zeros(OBS), np.ones(OBS), -np.ones(ACT), np.ones(ACT)
            ).parameters()
        )
        threads = overrides.get("num_threads", config.num_threads)
        print(
            f"{label:11s}{params:>10,d}{config.batch_size:>7d}{threads:>9d}{len(times) - 1:>7d}{rate:>10.2f}"
            f"{1 / rate:>9.3f}{config.steps:>14,d}{config.steps / rate / 3600:>12.2f}"
            f"   (wall {time.perf_counter() - start:.0f} s)"
        )
    if "paper-fp32" in rates:
        print(f"paper on CUDA: cuda_fast_math speed-up {rates['paper'] / rates['paper-fp32']:.2f}x")


if __name__ == "__main__":
    main()
