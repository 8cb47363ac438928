"""The example robot's documented run, end to end, and the results page it writes (results.md here).

Each step is a pls command a user types (README.md, "From recordings to a tuned policy"), run here as
separate processes over real DDS on this machine, in one ROS domain:

1. record: `pls record` while controllers.py (mix) drives driver.py;
2. dataset: `pls dataset from-bag` for the task reacher.yaml;
3. train + export: `pls train --preset cpu`, `pls export`;
4. evaluate: evaluate.py at the data's best return and G in {0, 2, 5, 10, 20} (cost should follow G);
5. tune: `pls robot --task reacher.yaml --model ...` with driver.py: PLS from the seed box at b.

A step whose output exists is not run again (delete it to redo), so a stopped run resumes.

    .venv/bin/python examples/reacher/walkthrough.py --out runs/reacher
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SPEC = HERE / "reacher.yaml"
PLS = [sys.executable, "-m", "pls_core.cli"]


def run(args: list[str], env: dict, log: Path, timeout: float) -> None:
    with open(log, "w") as out:
        proc = subprocess.run(args, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    if proc.returncode:
        sys.exit(f"walkthrough: {' '.join(args[2:5])} failed (exit {proc.returncode}); see {log}")


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, cwd=REPO, stdout=open(log, "w"),  # noqa: SIM115
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_text(log: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.is_file() and text in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    sys.exit(f"walkthrough: {text!r} not seen in {log} within {timeout:g} s")


def stop(proc: subprocess.Popen, timeout: float = 60.0) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait()


def record(out: Path, env: dict, episodes: int, seed: int) -> Path:
    bag = out / "bag"
    if bag.is_dir() and any(bag.glob("*.mcap")):
        return bag
    recorder = start([*PLS, "record", "--out", str(bag), "--episodes", str(episodes), "--no-progress",
                      "--verbose"], env, out / "record.log")
    controller = start([sys.executable, str(HERE / "controllers.py"), "--controller", "mix", "--seed",
                        str(seed)], env, out / "controller.log")
    try:
        wait_for_text(out / "record.log", "/robot/pls/action: 1 publisher(s) recorded", 120)
        driver = subprocess.run([sys.executable, str(HERE / "driver.py"), "--episodes", str(episodes),
                                 "--seed", str(seed), "--min-subscribers", "2"], env=env, cwd=REPO,
                                stdout=open(out / "driver_record.log", "w"),  # noqa: SIM115
                                stderr=subprocess.STDOUT, timeout=3600)
        if driver.returncode:
            sys.exit(f"walkthrough: the driver failed while recording; see {out / 'driver_record.log'}")
        recorder.wait(timeout=120)
    finally:
        stop(controller)
        stop(recorder)
    return bag


def tune(out: Path, env: dict, model: Path, threshold: float, varpi: int, episodes: int, seed: int) -> Path:
    store = out / "tune" / "pls_store.sqlite"
    if store.is_file():
        return store
    store.parent.mkdir(parents=True, exist_ok=True)
    graph = start([*PLS, "robot", "--task", str(SPEC), "--model", str(model), "--threshold", str(threshold),
                   "--episodes-per-evaluation", str(varpi), "--store-path", str(store), "--config", "",
                   "--no-progress", "--verbose"], env, out / "tune.log")
    try:
        wait_for_text(out / "tune.log", "new run in", 180)
        driver = subprocess.run([sys.executable, str(HERE / "driver.py"), "--episodes", str(episodes),
                                 "--seed", str(seed)], env=env, cwd=REPO,
                                stdout=open(out / "driver_tune.log", "w"),  # noqa: SIM115
                                stderr=subprocess.STDOUT, timeout=7200)
        if driver.returncode not in (0, 3):  # 3: the supervisor halted, reported below
            sys.exit(f"walkthrough: the driver failed while tuning; see {out / 'driver_tune.log'}")
    finally:
        stop(graph)
    return store


def tuning_summary(store_path: Path, threshold: float) -> dict:
    from pls_core.safeopt.store import OptimizerStore

    store = OptimizerStore(store_path)
    try:
        episodes = store.episodes()
    finally:
        store.close()
    costs = np.array([e.cost_return for _, e in episodes])
    rewards = np.array([e.reward_return for _, e in episodes])
    last = max(it for it, _ in episodes)
    final = [e for it, e in episodes if it == last]
    return {"episodes": len(episodes), "evaluations": last + 1,
            "unsafe_episodes": int((costs > threshold).sum()), "mean_cost": float(costs.mean()),
            "mean_reward": float(rewards.mean()), "final_target": final[0].target,
            "final_reward": float(np.mean([e.reward_return for e in final])),
            "final_cost": float(np.mean([e.cost_return for e in final]))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "reacher")
    parser.add_argument("--episodes", type=int, default=400, help="recorded behaviour episodes")
    parser.add_argument("--threshold", type=float, default=5.0, help="b for the tuning run")
    parser.add_argument("--varpi", type=int, default=10, help="episodes per target evaluation")
    parser.add_argument("--tune-episodes", type=int, default=300)
    parser.add_argument("--domain-id", type=int, default=61)
    parser.add_argument("--train-set", action="append", default=["reward_scale=0.1"],
                        help="pls train --set overrides (default reward_scale=0.1: Reacher's returns are "
                        "O(-10), the cpu preset's 0.001 would hide R)")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO))
    from pls_ros.dds import local_dds_environment

    env = {**os.environ, **local_dds_environment(domain_id=args.domain_id, log_dir=out / "ros_log"),
           "OMP_NUM_THREADS": "1"}
    started = time.monotonic()
    bag = record(out, env, args.episodes, seed=0)
    data = out / "reacher.hdf5"
    if not data.is_file():
        run([*PLS, "dataset", "from-bag", str(bag), "--task", str(SPEC), "--out", str(data), "--report",
             str(out / "from_bag.json")], env, out / "from_bag.log", 600)
    model = out / "policy.onnx"
    if not model.is_file():
        sets = [item for value in args.train_set for item in ("--set", value)]
        t0 = time.monotonic()
        run([*PLS, "train", "--dataset", str(data), "--out", str(out / "train"), "--preset", "cpu",
             "--resume", "--no-progress", *sets], env, out / "train.log", 4 * 3600)
        (out / "train_seconds.txt").write_text(f"{time.monotonic() - t0:.0f}\n")
        run([*PLS, "export", "--checkpoint", str(out / "train" / "checkpoint.pt"), "--out", str(model)], env,
            out / "export.log", 600)

    sys.path.insert(0, str(HERE))
    from evaluate import evaluate

    from pls_core.dataset import load_dataset

    rewards, costs, _ = load_dataset(data).episode_returns()
    best = float(rewards.max())
    evaluation_path = out / "evaluation.json"
    if not evaluation_path.is_file():
        targets = [(r, g) for r in (best, float(np.median(rewards))) for g in (0.0, 2.0, 5.0, 10.0, 20.0)]
        evaluation_path.write_text(json.dumps(evaluate(model, targets, episodes=20), indent=2))
    evaluation = json.loads(evaluation_path.read_text())
    store = tune(out, env, model, args.threshold, args.varpi, args.tune_episodes, seed=10_000)
    summary = tuning_summary(store, args.threshold)
    report = json.loads((out / "from_bag.json").read_text())

    faults = ", ".join(f"{name} {fault['count']}" for name, fault in report["faults"].items())
    lines = [
        "# The example robot's documented run (generated by walkthrough.py; do not edit)",
        "",
        f"Machine: {os.cpu_count()} cores; {time.monotonic() - started:.0f} s for the steps run this time.",
        "",
        f"1. Recorded {args.episodes} episodes of controllers.py `mix` driving driver.py (`pls record`).",
        f"2. `pls dataset from-bag`: {report['episodes']['kept']} of {report['episodes']['recorded']} "
        f"episodes kept, {report['transitions']} transitions; faults: {faults or 'none'}. Episode returns: "
        f"reward {rewards.min():.1f} .. {rewards.max():.1f}, cost {costs.min():.0f} .. {costs.max():.0f} "
        f"(median {np.median(costs):.0f}).",
        f"3. `pls train --preset cpu {' '.join('--set ' + s for s in args.train_set)}`"
        + (f": {(out / 'train_seconds.txt').read_text().strip()} s" if (out / 'train_seconds.txt').is_file()
           else "") + "; `pls export`.",
        "4. What the model does with its targets (evaluate.py, 20 episodes per target, episode seeds 5000+):",
        "",
        "| R | G | reward return | cost return |",
        "| --- | --- | --- | --- |",
        *[f"| {row['target_reward']:.2f} | {row['target_cost']:g} | {row['reward_mean']:.2f} ± "
          f"{row['reward_sd']:.2f} | {row['cost_mean']:.1f} ± {row['cost_sd']:.1f} |" for row in evaluation],
        "",
        f"5. PLS through the robot graph (`pls robot --task reacher.yaml`, b = {args.threshold:g}, "
        f"{args.varpi} episodes per evaluation, driver seeds 10000+): {summary['episodes']} episodes over "
        f"{summary['evaluations']} evaluations; episodes with cost above b: {summary['unsafe_episodes']}; "
        f"mean cost {summary['mean_cost']:.2f}, mean reward {summary['mean_reward']:.2f}; last target "
        f"R = {summary['final_target'][0]:.2f}, G = {summary['final_target'][1]:.2f}: reward "
        f"{summary['final_reward']:.2f}, cost {summary['final_cost']:.2f}.",
    ]
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
