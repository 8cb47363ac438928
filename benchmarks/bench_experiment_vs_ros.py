"""One PLS run in-process (`pls experiment`'s loop) vs the same run through the ROS node graph (`pls sim`).

Both sides use the same model, the same OptimizerConfig (the experiment's, written to a YAML for the
supervisor) and the same budget: `--iterations` evaluations of `--episodes-per-evaluation` full-length
episodes. Measured per side, wall clock:

* total: from start (model loading, env creation; for ROS, spawning the three node processes and DDS
  discovery) until the optimizer has made its decision after the last evaluation;
* loop: the same, from the moment the first target is being run (ROS: the supervisor's target #0 reaches
  the launcher's progress monitor) to that last decision.

In-process, the varpi episodes of an evaluation are stepped as one batch through one PolicyRunner (one ORT
call per step for all envs); the ROS graph runs one episode at a time, one DDS round trip per step, and
discards episodes that started before a new target arrived (lockstep starts the next episode at once).

    scripts/netns-run .venv/bin/python benchmarks/bench_experiment_vs_ros.py \
        [--models-dir pls_core/models] [--task T] [--iterations 2] [--episodes-per-evaluation 4]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pls_core.experiment.loop import RunKey, run_optimizer  # noqa: E402
from pls_core.experiment.rollouts import Rollouts  # noqa: E402
from pls_core.experiment.settings import (  # noqa: E402
    DEFAULT_MODELS_DIR,
    ExperimentSettings,
    optimizer_config,
    task_inputs,
)
from pls_core.tasks import DEFAULT_TASK  # noqa: E402
from pls_ros.dds import local_dds_environment, unique_domain_id  # noqa: E402

TARGET_LINE = re.compile(r"^\[pls\] target  #(\d+) ")
EPISODE_LINE = re.compile(r"^\[pls\] episode (\d+): ")


def in_process(inputs, config, iterations: int) -> dict:
    started = time.perf_counter()
    rollouts = Rollouts(inputs.model_path, inputs.task_id, config.episodes_per_evaluation)
    try:
        rollouts.run_jobs([], seed=0)  # no episodes: loads the model and makes the envs
        loop_started = time.perf_counter()
        decided = []
        record = run_optimizer(rollouts, config, RunKey(inputs.task_id, config.threshold, config.method,
                                                        config.seed), iterations, {},
                               on_iteration=lambda row: decided.append(time.perf_counter()))
    finally:
        rollouts.close()
    return {"total_s": decided[-1] - started, "loop_s": decided[-1] - loop_started,
            "episodes": len(record.episodes),
            "first_target": "R={:.2f} G={:.2f}".format(*record.iterations[0]["target"])}


def through_ros(inputs, config, iterations: int, workdir: Path) -> dict:
    import yaml

    config_path = workdir / "optimizer.yaml"
    config_path.write_text(yaml.safe_dump(config.to_dict()))
    domain = unique_domain_id()
    env = {**local_dds_environment(domain_id=domain, log_dir=workdir / "ros_log"), "OMP_NUM_THREADS": "1"}
    cap = 3 * iterations * config.episodes_per_evaluation + 5  # stale episodes included; we stop earlier
    cmd = [sys.executable, "-m", "pls_core.cli", "sim", "--task", inputs.task_id, "--model",
           str(inputs.model_path), "--mode", "lockstep", "--config", str(config_path), "--store-path",
           str(workdir / "store.sqlite"), "--max-episodes", str(cap), "--domain-id", str(domain),
           "--param", "pls_policy.expected_obs_dim=0", "--param", "pls_policy.expected_act_dim=0"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    targets: dict[int, float] = {}
    episodes, log = set(), []
    done = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            log.append(line.rstrip())
            if match := TARGET_LINE.match(line):
                targets.setdefault(int(match.group(1)), time.perf_counter())
                if int(match.group(1)) >= iterations:
                    done.set()
            elif match := EPISODE_LINE.match(line):
                episodes.add(int(match.group(1)))
        done.set()

    threading.Thread(target=read, daemon=True).start()
    done.wait(timeout=3600)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    if iterations not in targets:
        raise SystemExit("pls sim ended before the last decision; its output:\n" + "\n".join(log[-40:]))
    first = next(line for line in log if TARGET_LINE.match(line))
    return {"total_s": targets[iterations] - started, "loop_s": targets[iterations] - targets[0],
            "episodes": len(episodes), "first_target": first.split("]", 2)[2].split("reward")[0].strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument("--task", default=DEFAULT_TASK)
    parser.add_argument("--threshold", type=float, default=20.0)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--episodes-per-evaluation", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    settings = ExperimentSettings(tasks=(args.task,), thresholds=(args.threshold,), methods=("pls",),
                                  seeds=1, episodes_per_evaluation=args.episodes_per_evaluation,
                                  iterations=args.iterations, models_dir=args.models_dir)
    inputs = task_inputs(args.task, settings)
    config = optimizer_config(inputs, args.threshold, "pls", 0, settings)
    print(f"model {inputs.model_path}; PLS, b={args.threshold:g}, {args.iterations} evaluations x "
          f"{args.episodes_per_evaluation} episodes of up to {config.max_episode_length} steps", flush=True)
    local = in_process(inputs, config, args.iterations)
    with tempfile.TemporaryDirectory(prefix="pls-bench-ros-") as workdir:
        ros = through_ros(inputs, config, args.iterations, Path(workdir))
    print(f"{'':12}{'total [s]':>12}{'loop [s]':>12}{'episodes run':>14}  first target")
    for name, side in (("in-process", local), ("ROS graph", ros)):
        print(f"{name:12}{side['total_s']:12.1f}{side['loop_s']:12.1f}{side['episodes']:14d}  "
              f"{side['first_target']}")
    print(f"ROS / in-process: total {ros['total_s'] / local['total_s']:.1f}x, "
          f"loop {ros['loop_s'] / local['loop_s']:.1f}x")


if __name__ == "__main__":
    main()
