"""Control loop over DDS: deadline misses and observation -> action latency at 100 Hz and 500 Hz.

This process plays the robot side: at each tick of the rate it publishes an Observation (the real message,
on /pls/observation, the control QoS) and waits for the Action answering that (episode, step) on
/pls/action. The answer comes from a separate process: the real policy node (`python -m pls_ros.policy_node`,
onnxruntime, trigger=observation) with an exported model, or, when no model is available (or with
--responder), a minimal rclpy responder that echoes a zero action, which measures the DDS + rclpy cost alone.
The output says which one ran.

* latency: from just before `publish(observation)` to the moment this process's callback has the action:
  DDS both ways, both executors, and (policy node) the ONNX inference and the node's bookkeeping;
* deadline miss: the action was not back before the next tick was due (latency > period, or lost);
* late ticks: ticks this publisher itself started more than one period late (the loop fell behind).
* machine floor (first row of each rate, unless --no-floor): the same loop with neither DDS nor rclpy, a
  UNIX datagram socket echoed by a forked process (pinned like the answerer with --pin): the misses the
  machine's own scheduling causes, which no node can beat.
Episodes are 1000 steps (a new episode starts at step 0 with the policy's reset), 200 warm-up ticks per
rate are not counted. The policy node also reports its own receive -> publish latency (PolicyStatus).

Run it on an otherwise idle machine, confined to loopback:
    scripts/netns-run .venv/bin/python benchmarks/bench_dds_control_loop.py [--ticks 10000] [--model X.onnx]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pls_ros import graph as G  # noqa: E402
from pls_ros import qos as Q  # noqa: E402
from pls_ros.dds import local_dds_environment, unique_domain_id  # noqa: E402
from pls_ros.launcher import stop_process  # noqa: E402

SHIPPED_MODEL = REPO / "pls_core" / "models" / "SafetyHalfCheetahVelocity-v1" / "policy.onnx"
EPISODE_LEN = 1000
WARMUP = 200

RESPONDER = r"""
import sys, rclpy
from pls_interfaces.msg import Action, Observation
from pls_ros import qos
act_dim = int(sys.argv[1])
rclpy.init()
node = rclpy.create_node("pls_bench_responder")
pub = node.create_publisher(Action, qos.ACTION_TOPIC, qos.CONTROL_PUBLISHER_QOS)
zeros = [0.0] * act_dim
def answer(obs):
    out = Action()
    out.header.stamp = node.get_clock().now().to_msg()
    out.episode, out.step, out.action = obs.episode, obs.step, zeros
    pub.publish(out)
node.create_subscription(Observation, qos.OBSERVATION_TOPIC, answer, qos.CONTROL_QOS)
try:
    rclpy.spin(node)
except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
    pass
"""


# The machine's floor: this loop's timing with a raw socket echo instead of DDS and an rclpy node.
FLOOR = r"""
import json, os, socket, struct, sys, time
rate, ticks, warmup, pin = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
if os.fork() == 0:
    if pin:
        os.sched_setaffinity(0, {1})
    a.close()
    while (m := b.recv(64)) != b"q":
        b.send(m)
    os._exit(0)
if pin:
    os.sched_setaffinity(0, {0})
b.close()
period = 1.0 / rate
latencies, late = [], 0
start = time.perf_counter() + 0.1
for k in range(warmup + ticks):
    due = start + k * period
    if (wait := due - time.perf_counter()) > 0:
        time.sleep(wait)
    elif -wait > period:
        late += k >= warmup
    sent = time.perf_counter()
    a.send(struct.pack("d", sent))
    a.settimeout(max(due + period - time.perf_counter(), 1e-4))
    try:
        a.recv(64)
        latency = time.perf_counter() - sent
    except socket.timeout:
        latency = None
        a.settimeout(1.0)
        a.recv(64)  # the late echo, so the next tick reads its own
    if k >= warmup:
        latencies.append(latency)
a.send(b"q")
os.wait()
print(json.dumps({"latencies": latencies, "late": late}))
"""


def machine_floor(rate_hz: float, ticks: int, pin: bool) -> dict:
    """The loop's deadline misses and latency with a raw socket echo: what the machine alone allows."""
    out = subprocess.run([sys.executable, "-c", FLOOR, str(rate_hz), str(ticks), str(WARMUP), str(int(pin))],
                         capture_output=True, text=True, check=True, timeout=ticks / rate_hz * 3 + 60)
    import json

    data = json.loads(out.stdout)
    lat_ms = [v * 1e3 for v in data["latencies"] if v is not None]
    period_ms = 1e3 / rate_hz
    lost = sum(v is None for v in data["latencies"])
    return dict(rate=rate_hz, ticks=ticks, misses=lost + sum(v > period_ms for v in lat_ms), lost=lost,
                late_ticks=data["late"], p50=percentile(lat_ms, 50), p90=percentile(lat_ms, 90),
                p99=percentile(lat_ms, 99), max=max(lat_ms) if lat_ms else float("nan"),
                node_p50=float("nan"), node_p99=float("nan"), overruns=None, fallbacks=None,
                executor="machine floor (raw socket, no DDS)")


def percentile(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


class Bench:
    def __init__(self, obs_dim: int):
        import rclpy
        from pls_interfaces.msg import Action, Observation, PolicyStatus, TargetReturn
        from rclpy.executors import SingleThreadedExecutor

        from pls_ros import qos

        self.rclpy = rclpy
        self.Observation = Observation
        rclpy.init()
        self.node = rclpy.create_node("pls_bench_robot_side")
        self.obs_pub = self.node.create_publisher(Observation, qos.OBSERVATION_TOPIC,
                                                  qos.CONTROL_PUBLISHER_QOS)
        self.target_pub = self.node.create_publisher(TargetReturn, qos.TARGET_RETURN_TOPIC,
                                                     qos.TARGET_RETURN_QOS)
        self.node.create_subscription(Action, qos.ACTION_TOPIC, self.on_action, qos.CONTROL_QOS)
        self.node.create_subscription(PolicyStatus, qos.POLICY_STATUS_TOPIC, self.on_status,
                                      qos.POLICY_STATUS_QOS)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.rng = np.random.default_rng(0)
        self.obs_dim = obs_dim
        self.sent: dict[tuple[int, int], int] = {}  # (episode, step) -> publish time [ns]
        self.received: dict[tuple[int, int], int] = {}
        self.policy_actions = 0
        self.status: list = []
        target = TargetReturn(reward_return=2000.0, cost_return=10.0, iteration=0, phase=0)
        self.target_pub.publish(target)

    def on_action(self, msg) -> None:
        now = time.perf_counter_ns()
        key = (msg.episode, msg.step)
        if key in self.sent and key not in self.received:
            self.received[key] = now
            self.policy_actions += not msg.fallback

    def on_status(self, msg) -> None:
        self.status.append(msg)

    def spin_until(self, deadline_ns: int, key=None) -> None:
        while True:
            remaining = deadline_ns - time.perf_counter_ns()
            if remaining <= 0 or (key is not None and key in self.received):
                return
            self.executor.spin_once(timeout_sec=remaining / 1e9)

    def publish(self, episode: int, step: int) -> tuple[int, int]:
        msg = self.Observation()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.episode, msg.step = episode, step
        msg.observation = self.rng.standard_normal(self.obs_dim).astype(np.float32).tolist()
        msg.reward, msg.cost = (1.0, 0.0) if step else (0.0, 0.0)
        key = (episode, step)
        self.sent[key] = time.perf_counter_ns()
        self.obs_pub.publish(msg)
        return key

    def wait_for_answerer(self, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
        """Until the answering process is subscribed and answers step 0 with a policy action."""
        deadline = time.monotonic() + timeout_s
        episode = 10**6  # warm-up episodes, far from the measured ones
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the answering process exited with code {proc.returncode}")
            if self.obs_pub.get_subscription_count() == 0:
                self.spin_until(time.perf_counter_ns() + 100_000_000)
                continue
            key = self.publish(episode, 0)
            self.spin_until(time.perf_counter_ns() + 300_000_000, key)
            if key in self.received and self.policy_actions:
                return
            episode += 1
        raise RuntimeError("no policy action came back (target not received? model refused?)")

    def run(self, rate_hz: float, ticks: int, first_episode: int) -> dict:
        period = int(1e9 / rate_hz)
        self.sent.clear()
        self.received.clear()
        self.status.clear()
        measured: list[tuple[int, int]] = []
        late_ticks = 0
        start = time.perf_counter_ns() + period
        total = WARMUP + ticks
        for k in range(total):
            due = start + k * period
            self.spin_until(due)  # also delivers late answers of earlier ticks
            if time.perf_counter_ns() - due > period:
                late_ticks += k >= WARMUP
            episode, step = divmod(k, EPISODE_LEN)
            key = self.publish(first_episode + episode, step)
            if k >= WARMUP:
                measured.append(key)
            self.spin_until(due + period, key)
        self.spin_until(time.perf_counter_ns() + 200_000_000)  # stragglers
        lat_ms = []
        misses = lost = 0
        for key in measured:
            got = self.received.get(key)
            if got is None:
                lost += 1
                misses += 1
                continue
            latency = got - self.sent[key]
            lat_ms.append(latency / 1e6)
            misses += latency > period
        node_p50 = [s.latency_p50_ms for s in self.status if np.isfinite(s.latency_p50_ms)]
        node_p99 = [s.latency_p99_ms for s in self.status if np.isfinite(s.latency_p99_ms)]
        return dict(rate=rate_hz, ticks=ticks, misses=misses, lost=lost, late_ticks=late_ticks,
                    p50=percentile(lat_ms, 50), p90=percentile(lat_ms, 90), p99=percentile(lat_ms, 99),
                    max=max(lat_ms) if lat_ms else float("nan"),
                    node_p50=float(np.median(node_p50)) if node_p50 else float("nan"),
                    node_p99=float(np.max(node_p99)) if node_p99 else float("nan"),
                    overruns=self.status[-1].deadline_overruns if self.status else None,
                    fallbacks=self.status[-1].fallback_actions if self.status else None)

    def close(self) -> None:
        self.node.destroy_node()
        self.rclpy.try_shutdown()


def policy_command(model: Path, contract, rate_hz: float, executor: str) -> list[str]:
    overrides = {"model_path": str(model), "trigger": "observation", "control_rate_hz": float(rate_hz),
                 "expected_task_id": contract.task_id, "expected_obs_dim": contract.obs_dim,
                 "expected_act_dim": contract.act_dim, "status_period_s": 1.0, "executor": executor}
    node = G.ResolvedNode(G.POLICY_NODE, G.config_dir() / G.POLICY_NODE.params_file, overrides, [])
    return node.command()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 500.0])
    parser.add_argument("--ticks", type=int, default=10_000)
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL, help="exported ONNX policy")
    parser.add_argument("--responder", action="store_true", help="use the minimal responder, not the policy")
    parser.add_argument("--executors", nargs="+", default=["single_threaded", "events"],
                        choices=["single_threaded", "events"], help="the policy node's rclpy executor(s)")
    parser.add_argument("--pin", action="store_true",
                        help="this process on CPU 0, the answering process on CPU 1 (a core each)")
    parser.add_argument("--no-floor", dest="floor", action="store_false",
                        help="skip the machine-floor rows (raw socket echo, no DDS)")
    args = parser.parse_args()
    if args.pin:
        os.sched_setaffinity(0, {0})

    env = local_dds_environment(domain_id=unique_domain_id(), log_dir=REPO / "build" / "ros_log" / "bench")
    os.environ.update(env)
    contract = None
    if not args.responder and args.model.is_file():
        from pls_core.runtime import ModelContract

        contract = ModelContract.from_onnx(args.model)
        answerer = (f"real policy node (pls_ros.policy_node, onnxruntime 1 thread) with {args.model} "
                    f"[{contract.task_id}, obs {contract.obs_dim}, act {contract.act_dim}, "
                    f"context {contract.context_len}]")
        obs_dim, act_dim = contract.obs_dim, contract.act_dim
    else:
        why = "--responder" if args.responder else f"no model at {args.model}"
        answerer = f"MINIMAL RESPONDER (rclpy echo of a zero action; {why}): DDS + rclpy cost only"
        obs_dim, act_dim = 17, 6
    print(f"answering process: {answerer}")
    print(f"transport: Fast DDS, ROS_AUTOMATIC_DISCOVERY_RANGE={env.get('ROS_AUTOMATIC_DISCOVERY_RANGE')}, "
          f"domain {env['ROS_DOMAIN_ID']}, reliable/volatile, writers keep {Q.CONTROL_PUBLISHER_HISTORY}, "
          f"readers 1 (pls_ros.qos); "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start"
          + ("; pinned: this process CPU 0, the answering process CPU 1" if args.pin else ""))
    print(f"{args.ticks} measured ticks per rate after {WARMUP} warm-up ticks; "
          f"episodes of {EPISODE_LEN} steps\n")

    results = []
    if args.floor:  # before any rclpy in this process (the floor forks)
        for rate in args.rates:
            results.append(machine_floor(rate, args.ticks, args.pin))
            r = results[-1]
            print(f"machine floor {rate:g} Hz done: {r['misses']} misses, p50 {r['p50']:.3f} ms, "
                  f"max {r['max']:.3f} ms", flush=True)
    bench = Bench(obs_dim)
    runs = [(e, rate) for e in (args.executors if contract is not None else ["n/a"]) for rate in args.rates]
    try:
        for i, (executor, rate) in enumerate(runs):
            cmd = (policy_command(args.model, contract, rate, executor) if contract is not None
                   else [sys.executable, "-c", RESPONDER, str(act_dim)])
            pin = (lambda: os.sched_setaffinity(0, {1})) if args.pin else None
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    preexec_fn=pin)
            try:
                bench.wait_for_answerer(proc)
                results.append({**bench.run(rate, args.ticks, first_episode=i * 1000), "executor": executor})
            finally:
                stop_process(proc)
            r = results[-1]
            print(f"{executor} {rate:g} Hz done: {r['misses']} misses, p50 {r['p50']:.3f} ms, "
                  f"p99 {r['p99']:.3f} ms", flush=True)
    finally:
        bench.close()

    print("\n| executor | rate | period | ticks | deadline misses | lost | late ticks | latency p50 | p90 "
          "| p99 | max | node p50 / p99 (recv->pub) | node overruns |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        node = (f"{r['node_p50']:.3f} / {r['node_p99']:.3f} ms" if np.isfinite(r["node_p50"]) else "n/a")
        print(f"| {r['executor']} | {r['rate']:g} Hz | {1e3 / r['rate']:g} ms | {r['ticks']} | {r['misses']} "
              f"({100 * r['misses'] / r['ticks']:.2f}%) | {r['lost']} | {r['late_ticks']} | "
              f"{r['p50']:.3f} ms | "
              f"{r['p90']:.3f} ms | {r['p99']:.3f} ms | {r['max']:.3f} ms | {node} | "
              f"{r['overruns'] if r['overruns'] is not None else 'n/a'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
