"""Batch-1 inference latency of the deployed CDT: onnxruntime (what PolicyRunner runs) beside torch eager.

Both run the same weights (a freshly initialised model of the chosen preset, HalfCheetah sizes) on one
thread, over the same left-padded windows. Prints p50/p99 in ms and the eager/ORT ratio. Also times a full
PolicyRunner.act() (buffer shift + contract check + ORT) and a batched call over many envs.

    python benchmarks/bench_runtime.py [--preset cpu|paper|tiny] [--calls 2000]
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from pls_core.cdt.model import build_model
from pls_core.cdt.presets import preset
from pls_core.export import INPUT_NAMES, export_model, random_windows
from pls_core.runtime import PolicyRunner

OBS, ACT, EPISODE_LEN = 17, 6, 1000  # SafetyHalfCheetahVelocity-v1


def synthetic_facts(context_len: int) -> dict:
    facts = {
        "task_id": "SafetyHalfCheetahVelocity-v1",
        "obs_dim": OBS,
        "act_dim": ACT,
        "act_low": [-1.0] * ACT,
        "act_high": [1.0] * ACT,
        "episode_len": EPISODE_LEN,
        "obs_mean": [0.0] * OBS,
        "obs_std": [1.0] * OBS,
        "dataset_sha256": "benchmark",
        "dataset_stats": {},
    }
    facts["parity_windows"] = random_windows(facts, context_len, 4, EPISODE_LEN, np.random.default_rng(0))
    return facts


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    ms = np.asarray(samples_s) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def time_calls(fn, calls: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = preset(args.preset)
    facts = synthetic_facts(config.context_len)
    model = build_model(
        config,
        OBS,
        ACT,
        EPISODE_LEN,
        facts["obs_mean"],
        facts["obs_std"],
        facts["act_low"],
        facts["act_high"],
    ).eval()
    root = Path(tempfile.mkdtemp(prefix="bench-runtime-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    path = root / "policy.onnx"
    parity = export_model(model, config, facts, path)

    window = random_windows(facts, config.context_len, 1, EPISODE_LEN, np.random.default_rng(1))
    tensors = [torch.from_numpy(window[name]) for name in INPUT_NAMES]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as PolicyRunner configures it
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def eager():
        with torch.inference_mode():
            model.act(*tensors)

    ort_p50, ort_p99 = percentiles(
        time_calls(lambda: session.run(["action"], window), args.calls, args.warmup)
    )
    eager_p50, eager_p99 = percentiles(time_calls(eager, args.calls, args.warmup))

    obs = np.zeros(OBS, dtype=np.float32)
    runner = PolicyRunner(path, num_envs=1, intra_op_threads=1)
    runner.reset((2500.0, 20.0))

    def act_step():
        runner.act(obs)
        runner.record(1.0, 0.0)

    act_p50, act_p99 = percentiles(time_calls(act_step, args.calls, args.warmup))
    batched = PolicyRunner(path, num_envs=64)
    batched.reset((2500.0, 20.0))
    obs64 = np.zeros((64, OBS), dtype=np.float32)

    def batched_step():
        batched.act(obs64)
        batched.record(np.ones(64), np.zeros(64))

    b_p50, b_p99 = percentiles(time_calls(batched_step, max(100, args.calls // 10), 20))

    params = sum(p.numel() for p in model.parameters())
    print(
        f"preset {args.preset}: E={config.embed_dim} L={config.num_layers} H={config.num_heads} "
        f"K={config.context_len}, {params / 1e6:.3f} M parameters, ONNX {path.stat().st_size / 1e6:.2f} MB, "
        f"parity {parity:.1e}; {args.calls} calls after {args.warmup} warm-up, 1 thread"
    )
    print(f"{'':34s}{'p50 ms':>9s}{'p99 ms':>9s}")
    print(f"{'onnxruntime, batch 1':34s}{ort_p50:9.3f}{ort_p99:9.3f}")
    print(f"{'torch eager (inference_mode)':34s}{eager_p50:9.3f}{eager_p99:9.3f}")
    print(f"{'PolicyRunner.act+record, 1 env':34s}{act_p50:9.3f}{act_p99:9.3f}")
    print(f"{'PolicyRunner.act+record, 64 envs':34s}{b_p50:9.3f}{b_p99:9.3f}")
    print(f"eager / onnxruntime (p50): {eager_p50 / ort_p50:.2f}x")


if __name__ == "__main__":
    main()
