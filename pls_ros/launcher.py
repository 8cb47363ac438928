"""Start a pls node graph without `ros2 launch`: the pip-only equivalent of launch/*.launch.py.

The graph comes from pls_ros.graph (the same description the launch files use). Each node runs as its own
process, `python -m <module> --ros-args -r __node:=<name> --params-file <yaml> -p k:=v -r from:=to`, in a
localhost-only DDS environment unless the caller passes another. The launcher

  * writes each node's output to `<log dir>/<node name>.log` (named when the run ends), and with
    `verbose` also shows it inline, each line prefixed with `[<node name>]`; a required node that fails
    has the end of its log shown either way;
  * forwards SIGINT/SIGTERM to the nodes (each runs in its own session, so a terminal's Ctrl-C reaches
    them once, through us), escalating to SIGTERM/SIGKILL when a node does not stop in time;
  * stops the whole graph as soon as one required node exits, and says which one and its exit code
    (the launch files do the same with `on_exit=Shutdown()`);
  * optionally shows live progress (pls_ros.progress_view) from the supervisor's and the robot side's
    topics, subscribed to from this process.
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
from pathlib import Path

from pls_ros import graph as G
from pls_ros.progress_view import LineView, ProgressMonitor, make_view

describe_exit = G.describe_exit


@dataclass
class Running:
    node: G.ResolvedNode
    proc: subprocess.Popen
    reader: threading.Thread

    @property
    def name(self) -> str:
        return self.node.label


LOG_TAIL_LINES = 20  # of a failed required node's log, shown when its output is not inline


def _pump(stream, name: str, log_path: Path, printer) -> None:
    """Copy a node's output to its log file, and to `printer` (verbose) when one is given."""
    with log_path.open("a", encoding="utf-8") as log:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            log.write(line)
            log.flush()
            if printer is not None:
                printer(name, line)
    stream.close()


def stop_process(proc: subprocess.Popen, first_signal: int = signal.SIGINT, timeout_s: float = 10.0) -> int:
    """Send `first_signal`, wait up to `timeout_s`, then SIGKILL; returns the exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(first_signal)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(timeout=10)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return []


class Launcher:
    """Runs resolved nodes as child processes until one required node exits or a signal arrives."""

    def __init__(self, nodes: Sequence[G.ResolvedNode], env: Mapping[str, str], log_dir: Path, *,
                 printer=None, verbose: bool = True, python: str | None = None, stop_timeout_s: float = 10.0,
                 poll_s: float = 0.1):
        self.nodes = list(nodes)
        self.env = dict(env)
        self.log_dir = Path(log_dir)
        self.printer = printer or LineView()
        self.verbose = verbose
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
    def log_path(self, name: str) -> Path:
        """<log dir>/<node>.log; a fleet's robot0/pls_sim logs to robot0.pls_sim.log."""
        return self.log_dir / f"{name.replace('/', '.')}.log"

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            cmd = node.command(self.python)
            proc = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            echo = self.printer if self.verbose else None
            with self.log_path(node.label).open("w", encoding="utf-8") as log:
                log.write(f"# {shlex.join(cmd)}\n")
            reader = threading.Thread(target=_pump, args=(proc.stdout, node.label,
                                                          self.log_path(node.label), echo),
                                      name=f"out-{node.label}", daemon=True)
            reader.start()
            self.running.append(Running(node, proc, reader))
            command = shlex.join(cmd[1:])
            if self.verbose:
                self.say(f"started {node.label} (pid {proc.pid}): {command}")
            else:  # the command line heads the node's log file
                self.say(f"started {node.label} (pid {proc.pid})")

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
        if self.running:
            names = ", ".join(self.log_path(r.name).name for r in self.running)
            self.say(f"node logs in {self.log_dir}/: {names}")
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
                    if G.exit_is_failure(code) and not self.verbose:  # show why, above the exit message
                        r.reader.join(timeout=2.0)  # its last lines are in the file
                        self.say(f"last lines of {self.log_path(r.name)}:")
                        for line in log_tail(self.log_path(r.name)):
                            self.printer(r.name, line)
                    self.say(G.exit_message(r.node.spec, code, others))
                    return 0 if code == 0 else (code if code > 0 else 1)
                if r.name not in self._reported:
                    self._reported.add(r.name)
                    self.say(f"node {r.name} ended ({describe_exit(code)}); the others keep running")
            if on_tick is not None:
                on_tick()
            time.sleep(self.poll_s)


# ------------------------------------------------------------------------------------------------------
def node_log_dir(graph: G.Graph, env: Mapping[str, str]) -> Path:
    """<ROS_LOG_DIR, else ~/.ros/log>/pls_<graph>_<date-time>_<pid>: one folder per run, as ros2 launch."""
    root = Path(env.get("ROS_LOG_DIR") or Path.home() / ".ros" / "log")
    return root / f"pls_{graph.name}_{time.strftime('%Y-%m-%d-%H-%M-%S')}_{os.getpid()}"


def launch(graph: G.Graph, values: Mapping[str, str] | None = None, *, extra_params=(), env=None,
           progress: bool = True, verbose: bool = False, live: bool | None = None, config=None,
           dry_run: bool = False, stop_timeout_s: float = 10.0, title: str | None = None) -> int:
    """Resolve `graph` with argument `values` and run it until it ends; returns the exit status.

    `progress`: show the run (a live screen on a terminal or when `live`, else one line per event);
    `verbose`: also show every node's output inline (it is always in the node log files)."""
    from pls_ros.dds import local_dds_environment

    try:
        nodes = G.resolve(graph, values, config, extra_params)  # every value checked before any node starts
    except (KeyError, ValueError) as exc:
        print(G.launch_error_text(exc), file=sys.stderr, flush=True)
        return G.EXIT_USAGE
    lines = LineView()
    if dry_run:
        for node in nodes:
            lines("pls", shlex.join(node.command()))
        return 0
    env = dict(env) if env is not None else local_dds_environment()
    max_episodes = int(dict(values or {}).get("max_episodes", 0) or 0)
    view = make_view(title or f"pls {graph.name}", live=live if progress else False,
                     max_episodes=max_episodes)
    discovery = env.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "default")
    view.say("pls", f"graph {graph.name}: {', '.join(n.label for n in nodes)} | "
                    f"ROS_DOMAIN_ID={env.get('ROS_DOMAIN_ID')} discovery={discovery}")
    monitor = None
    if progress:
        dds_keys = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOG_DIR")
        os.environ.update({k: env[k] for k in dds_keys if k in env})
        monitor = ProgressMonitor(view, topics=G.progress_topics(graph, values, config))
        try:
            monitor.start()
        except Exception as exc:  # progress is a convenience; never stop the graph for it
            view.say("pls", f"progress display unavailable: {exc}")
            monitor = None
    try:
        return Launcher(nodes, env, node_log_dir(graph, env), printer=view, verbose=verbose,
                        stop_timeout_s=stop_timeout_s).run()
    finally:
        if monitor is not None:
            monitor.stop()
        view.close()
