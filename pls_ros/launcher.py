"""Start a pls node graph without `ros2 launch`: the pip-only equivalent of launch/*.launch.py.

The graph comes from pls_ros.graph (the same description the launch files use). Each node runs as its own
process, `python -m <module> --ros-args -r __node:=<name> --params-file <yaml> -p k:=v -r from:=to`, in a
localhost-only DDS environment unless the caller passes another. The launcher

  * prefixes every output line of a node with `[<node name>]`;
  * forwards SIGINT/SIGTERM to the nodes (each runs in its own session, so a terminal's Ctrl-C reaches
    them once, through us), escalating to SIGTERM/SIGKILL when a node does not stop in time;
  * stops the whole graph as soon as one required node exits, and says which one and its exit code
    (the launch files do the same with `on_exit=Shutdown()`);
  * optionally shows live progress (iteration, phase, target, episode returns, safe-set size) by
    subscribing to the supervisor's and the robot side's topics from this process.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from pls_ros import graph as G

describe_exit = G.describe_exit


class Printer:
    """Line-atomic printing shared by the node readers and the progress monitor."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()

    def __call__(self, prefix: str, line: str) -> None:
        with self.lock:
            self.stream.write(f"[{prefix}] {line.rstrip()}\n")
            self.stream.flush()


@dataclass
class Running:
    node: G.ResolvedNode
    proc: subprocess.Popen
    reader: threading.Thread

    @property
    def name(self) -> str:
        return self.node.spec.name


def _pump(stream, name: str, printer: Printer) -> None:
    for raw in iter(stream.readline, b""):
        printer(name, raw.decode("utf-8", errors="replace"))
    stream.close()


class Launcher:
    """Runs resolved nodes as child processes until one required node exits or a signal arrives."""

    def __init__(self, nodes: Sequence[G.ResolvedNode], env: Mapping[str, str], *,
                 printer: Printer | None = None, python: str | None = None, stop_timeout_s: float = 10.0,
                 poll_s: float = 0.1):
        self.nodes = list(nodes)
        self.env = dict(env)
        self.printer = printer or Printer()
        self.python = python or sys.executable
        self.stop_timeout_s = stop_timeout_s
        self.poll_s = poll_s
        self.running: list[Running] = []
        self._signal: int | None = None
        self._signal_count = 0
        self._reported: set[str] = set()

    def say(self, line: str) -> None:
        self.printer("pls", line)

    # ---- signals -------------------------------------------------------------------------------------
    def _on_signal(self, signum, _frame) -> None:
        self._signal = signum
        self._signal_count += 1
        if self._signal_count > 1:  # a second Ctrl-C: escalate right away
            escalate = signal.SIGTERM if self._signal_count == 2 else signal.SIGKILL
            for r in self.running:
                if r.proc.poll() is None:
                    r.proc.send_signal(escalate)

    def _install_signal_handlers(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, self._on_signal)
        return previous

    # ---- life cycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        for node in self.nodes:
            cmd = node.command(self.python)
            proc = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            reader = threading.Thread(target=_pump, args=(proc.stdout, node.spec.name, self.printer),
                                      name=f"out-{node.spec.name}", daemon=True)
            reader.start()
            self.running.append(Running(node, proc, reader))
            self.say(f"started {node.spec.name} (pid {proc.pid}): {shlex.join(cmd[1:])}")

    def stop(self, first_signal: int = signal.SIGINT) -> None:
        """Signal every live node, then escalate SIGINT -> SIGTERM -> SIGKILL on those that linger."""
        ladder = [first_signal] + [s for s in (signal.SIGTERM, signal.SIGKILL) if s != first_signal]
        if first_signal == signal.SIGKILL:
            ladder = [signal.SIGKILL]
        for step, sig in enumerate(ladder):
            alive = [r for r in self.running if r.proc.poll() is None]
            if not alive:
                break
            if step:
                names = ", ".join(r.name for r in alive)
                self.say(f"{names} still running: sending {signal.Signals(sig).name}")
            for r in alive:
                with contextlib.suppress(ProcessLookupError):
                    r.proc.send_signal(sig)
            deadline = time.monotonic() + (self.stop_timeout_s if sig != signal.SIGKILL else 5.0)
            while time.monotonic() < deadline and any(r.proc.poll() is None for r in alive):
                time.sleep(0.05)
        for r in self.running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                r.proc.wait(timeout=1.0)
            r.reader.join(timeout=2.0)

    def run(self, on_tick: Callable[[], None] | None = None) -> int:
        """Start the graph and supervise it. Returns 0 after a clean end or a requested stop, otherwise the
        exit code of the required node that ended the run (1 if it was killed by a signal)."""
        previous = self._install_signal_handlers()
        try:
            self.start()
            code = self._supervise(on_tick)
        finally:
            self.stop(signal.SIGINT if self._signal is None else self._signal)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        for r in self.running:
            self.say(f"{r.name}: {describe_exit(r.proc.returncode)}")
        return code

    def _supervise(self, on_tick: Callable[[], None] | None) -> int:
        while True:
            if self._signal is not None:
                self.say(f"{signal.Signals(self._signal).name} received: stopping all nodes")
                return 0
            for r in self.running:
                code = r.proc.poll()
                if code is None:
                    continue
                others = [o.name for o in self.running if o is not r and o.proc.poll() is None]
                if r.node.spec.required:
                    self.say(G.exit_message(r.node.spec, code, others))
                    return 0 if code == 0 else (code if code > 0 else 1)
                if r.name not in self._reported:
                    self._reported.add(r.name)
                    self.say(f"node {r.name} ended ({describe_exit(code)}); the others keep running")
            if on_tick is not None:
                on_tick()
            time.sleep(self.poll_s)


# ------------------------------------------------------------------------------------------------------
# Live progress, from the topics the graph already publishes.
class ProgressMonitor:
    """Subscribes (in this process, own rclpy context) to TargetReturn, SupervisorStatus and EpisodeResult
    and prints one line per new target, per finished episode and per change of the supervisor's state."""

    def __init__(self, printer: Printer, *, episode_result_topic: str = G.EPISODE_RESULT):
        self.printer = printer
        self.episode_result_topic = episode_result_topic
        self._thread: threading.Thread | None = None
        self._last_status: tuple | None = None
        self._last_message = ""
        self.counts = {"target": 0, "episode": 0, "status": 0}

    def start(self) -> None:
        import rclpy
        from pls_interfaces.msg import EpisodeResult, SupervisorStatus, TargetReturn
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        from pls_ros.echo import monitor_qos

        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(f"pls_launcher_monitor_{os.getpid()}", context=self.context,
                                      start_parameter_services=False)
        self.node.create_subscription(TargetReturn, G.TARGET_RETURN, self._on_target,
                                      monitor_qos(G.TARGET_RETURN))
        self.node.create_subscription(SupervisorStatus, G.SUPERVISOR_STATUS, self._on_status,
                                      monitor_qos(G.SUPERVISOR_STATUS))
        self.node.create_subscription(EpisodeResult, self.episode_result_topic, self._on_episode,
                                      monitor_qos(G.EPISODE_RESULT))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="pls-progress", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            while self.context.ok():
                self.executor.spin_once(timeout_sec=0.1)
        except Exception:  # context shut down under us at exit
            pass

    def stop(self) -> None:
        if self._thread is None:
            return
        with contextlib.suppress(Exception):
            self._rclpy.shutdown(context=self.context)
        self._thread.join(timeout=2.0)
        try:
            self.executor.shutdown(timeout_sec=1.0)
            self.node.destroy_node()
        except Exception:
            pass
        self._thread = None

    def say(self, line: str) -> None:
        self.printer("pls", line)

    def _on_target(self, msg) -> None:
        self.counts["target"] += 1
        self.say(f"target  #{msg.iteration} [{phase_name(msg.phase)}] R={msg.reward_return:.2f} "
                 f"G={msg.cost_return:.2f}  reward in [{msg.reward_lower:.1f}, {msg.reward_upper:.1f}]  "
                 f"cost in [{msg.cost_lower:.1f}, {msg.cost_upper:.1f}]")

    def _on_episode(self, msg) -> None:
        self.counts["episode"] += 1
        self.say(f"episode {msg.episode}: reward {msg.reward_return:.2f}  cost {msg.cost_return:.2f}  "
                 f"({msg.length} steps, {msg.reason or 'done'})  target R={msg.target_reward_return:.2f} "
                 f"G={msg.target_cost_return:.2f}")

    def _on_status(self, msg) -> None:
        self.counts["status"] += 1
        key = (msg.iteration, msg.phase, msg.safe_set_size, msg.episodes_at_current_target)
        if key == self._last_status and msg.message == self._last_message:
            return
        line = (f"status  iteration {msg.iteration} [{phase_name(msg.phase)}]  safe set "
                f"{msg.safe_set_size}/{msg.candidate_set_size}  episodes {msg.episodes_at_current_target}/"
                f"{msg.episodes_per_evaluation}  best R={msg.best_reward_return:.2f} "
                f"G={msg.best_cost_return:.2f}  (b={msg.threshold:g})")
        if msg.message and msg.message != self._last_message:
            line += f"  {msg.message}"
        self._last_status, self._last_message = key, msg.message
        self.say(line)


PHASES = {0: "seed", 1: "safe_exploration", 2: "reward_maximisation", 3: "operation", 4: "halted"}


def phase_name(phase: int) -> str:
    return PHASES.get(int(phase), f"phase {phase}")


# ------------------------------------------------------------------------------------------------------
def launch(graph: G.Graph, values: Mapping[str, str] | None = None, *, extra_params=(), env=None,
           progress: bool = True, printer: Printer | None = None, config=None, dry_run: bool = False,
           stop_timeout_s: float = 10.0) -> int:
    """Resolve `graph` with argument `values` and run it until it ends; returns the exit status."""
    from pls_ros.dds import local_dds_environment

    printer = printer or Printer()
    try:
        nodes = G.resolve(graph, values, config, extra_params)  # every value checked before any node starts
    except (KeyError, ValueError) as exc:
        print(G.launch_error_text(exc), file=sys.stderr, flush=True)
        return G.EXIT_USAGE
    env = dict(env) if env is not None else local_dds_environment()
    if dry_run:
        for node in nodes:
            printer("pls", shlex.join(node.command()))
        return 0
    discovery = env.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "default")
    printer("pls", f"graph {graph.name}: {', '.join(n.spec.name for n in nodes)} | "
                   f"ROS_DOMAIN_ID={env.get('ROS_DOMAIN_ID')} discovery={discovery}")
    monitor = None
    if progress:
        dds_keys = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR")
        os.environ.update({k: env[k] for k in dds_keys if k in env})
        monitor = ProgressMonitor(printer, episode_result_topic=G.topic_in_graph(graph, G.EPISODE_RESULT,
                                                                                  values, config))
        try:
            monitor.start()
        except Exception as exc:  # progress is a convenience; never stop the graph for it
            printer("pls", f"progress display unavailable: {exc}")
            monitor = None
    try:
        return Launcher(nodes, env, printer=printer, stop_timeout_s=stop_timeout_s).run()
    finally:
        if monitor is not None:
            monitor.stop()
