"""What `pls sim`, `pls robot` and `pls demo` show while the graph runs, from the topics it publishes.

`ProgressMonitor` subscribes (in the launcher's process, its own rclpy context) to TargetReturn,
SupervisorStatus and the robot side's EpisodeResult and hands each message to a view:

* `LiveView` (a terminal): one screen, redrawn in place: phase, iteration, safe-set size, the current
  target and its confidence bounds, the last episodes' returns and a progress bar over the run. The
  launcher's own lines scroll above it.
* `LineView` (a pipe, a file, CI): one line per new target, per finished episode and per change of the
  supervisor's state.

The nodes' own output goes to log files (pls_ros.launcher); `--verbose` shows it inline as well.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from collections import deque
from typing import Protocol, TextIO

PHASES = {0: "seed", 1: "safe_exploration", 2: "reward_maximisation", 3: "operation", 4: "halted"}


def phase_name(phase: int) -> str:
    return PHASES.get(int(phase), f"phase {phase}")


class View(Protocol):
    def say(self, prefix: str, line: str) -> None: ...
    def on_target(self, msg) -> None: ...
    def on_episode(self, msg) -> None: ...
    def on_status(self, msg) -> None: ...
    def close(self) -> None: ...


class LineView:
    """Line-atomic printing of `[prefix] line`, shared by the node readers, the launcher and the monitor."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()
        self._last_status: tuple | None = None
        self._last_message = ""

    def __call__(self, prefix: str, line: str) -> None:
        self.say(prefix, line)

    def say(self, prefix: str, line: str) -> None:
        with self.lock:
            self.stream.write(f"[{prefix}] {line.rstrip()}\n")
            self.stream.flush()

    def on_target(self, msg) -> None:
        self.say("pls", f"target  #{msg.iteration} [{phase_name(msg.phase)}] R={msg.reward_return:.2f} "
                 f"G={msg.cost_return:.2f}  reward in [{msg.reward_lower:.1f}, {msg.reward_upper:.1f}]  "
                 f"cost in [{msg.cost_lower:.1f}, {msg.cost_upper:.1f}]")

    def on_episode(self, msg) -> None:
        self.say("pls", f"episode {msg.episode}: reward {msg.reward_return:.2f}  cost {msg.cost_return:.2f}  "
                 f"({msg.length} steps, {msg.reason or 'done'})  target R={msg.target_reward_return:.2f} "
                 f"G={msg.target_cost_return:.2f}")

    def on_status(self, msg) -> None:
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
        self.say("pls", line)

    def close(self) -> None:
        pass


class LiveView:
    """The run on one terminal screen (rich.live), redrawn a few times a second."""

    EPISODES_SHOWN = 6

    def __init__(self, title: str, max_episodes: int = 0, console=None):
        from rich.console import Console
        from rich.live import Live

        self.title, self.max_episodes = title, max_episodes
        self.lock = threading.Lock()
        self.target = self.status = None
        self.episodes: deque = deque(maxlen=self.EPISODES_SHOWN)
        self.episodes_seen, self.unsafe_seen = 0, 0
        self.started = time.monotonic()
        self.live = Live(console=console or Console(), refresh_per_second=4, transient=False,
                         get_renderable=self.render)
        self.live.start()

    def __call__(self, prefix: str, line: str) -> None:
        self.say(prefix, line)

    def say(self, prefix: str, line: str) -> None:
        self.live.console.print(f"[{prefix}] {line.rstrip()}", markup=False, highlight=False, soft_wrap=True)

    def on_target(self, msg) -> None:
        with self.lock:
            self.target = msg

    def on_episode(self, msg) -> None:
        with self.lock:
            self.episodes.append(msg)
            self.episodes_seen += 1
            threshold = self.status.threshold if self.status is not None else math.inf
            self.unsafe_seen += msg.cost_return > threshold

    def on_status(self, msg) -> None:
        with self.lock:
            self.status = msg

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.live.stop()

    def render(self):
        from rich.console import Group
        from rich.panel import Panel
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        with self.lock:
            status, target, episodes = self.status, self.target, list(self.episodes)
            seen, unsafe = self.episodes_seen, self.unsafe_seen
        head = Table.grid(padding=(0, 2))
        head.add_column(style="bold")
        head.add_column()
        if status is None:
            head.add_row("supervisor", "waiting for its first status")
        else:
            head.add_row("phase", f"{phase_name(status.phase)} (iteration {status.iteration}, "
                                  f"{status.episodes_at_current_target}/{status.episodes_per_evaluation} "
                                  "episodes at this target)")
            head.add_row("safe set", f"{status.safe_set_size} of {status.candidate_set_size} targets "
                                     f"verified safe (b = {status.threshold:g})")
            head.add_row("best safe",
                         f"R = {status.best_reward_return:.1f}, G = {status.best_cost_return:.1f}")
            if status.message:
                head.add_row("note", status.message)
        if target is not None:
            head.add_row("target", f"R = {target.reward_return:.1f}, G = {target.cost_return:.1f}: reward in "
                                   f"[{target.reward_lower:.0f}, {target.reward_upper:.0f}], cost in "
                                   f"[{target.cost_lower:.1f}, {target.cost_upper:.1f}]")
        recent = Table(box=None, pad_edge=False, header_style="bold")
        for name in ("episode", "reward", "cost", "steps", "end", "target (R, G)"):
            numeric = name in ("episode", "reward", "cost", "steps")
            recent.add_column(name, justify="right" if numeric else "left")
        for m in episodes:
            over = status is not None and m.cost_return > status.threshold
            recent.add_row(str(m.episode), f"{m.reward_return:.1f}", f"{m.cost_return:.1f}", str(m.length),
                           m.reason or "done", f"({m.target_reward_return:.1f}, {m.target_cost_return:.1f})",
                           style="red" if over else None)
        elapsed = time.monotonic() - self.started
        foot = Table.grid(padding=(0, 2))
        if self.max_episodes > 0:
            done = min(seen, self.max_episodes)
            foot.add_row(ProgressBar(total=self.max_episodes, completed=done, width=40),
                         f"{seen}/{self.max_episodes} episodes, {unsafe} above b, {elapsed:.0f} s")
        else:
            foot.add_row(f"{seen} episodes, {unsafe} above b, {elapsed:.0f} s")
        return Panel(Group(head, recent, foot), title=self.title, title_align="left")


def make_view(title: str, *, live: bool | None = None, max_episodes: int = 0, stream: TextIO | None = None):
    """A LiveView on a terminal (or when `live` is True), else a LineView on `stream`."""
    stream = stream or sys.stdout
    if live is None:
        live = stream.isatty() and os.environ.get("TERM") != "dumb"
    if live:
        from rich.console import Console

        return LiveView(title, max_episodes, Console(file=stream))
    return LineView(stream)


class ProgressMonitor:
    """Subscribes to the graph's TargetReturn, SupervisorStatus and EpisodeResult topics (own rclpy
    context, own thread) and hands every message to `view`. `topics`: kind ("target", "status",
    "episode") -> the topic names to follow (graph.progress_topics: remapped on a robot, one per robot
    in a fleet); default: the /pls topics."""

    def __init__(self, view: View, *, topics: dict[str, list[str]] | None = None):
        from pls_ros import graph as G

        self.view = view
        self.topics = {"target": [G.TARGET_RETURN], "status": [G.SUPERVISOR_STATUS],
                       "episode": [G.EPISODE_RESULT], **(topics or {})}
        self._thread: threading.Thread | None = None
        self.counts = {"target": 0, "episode": 0, "status": 0}

    def _count(self, kind: str, handler):
        def callback(msg):
            self.counts[kind] += 1
            handler(msg)
        return callback

    def start(self) -> None:
        import rclpy
        from pls_interfaces.msg import EpisodeResult, SupervisorStatus, TargetReturn
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        from pls_ros import graph as G
        from pls_ros.echo import monitor_qos

        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(f"pls_launcher_monitor_{os.getpid()}", context=self.context,
                                      start_parameter_services=False)
        view = self.view
        for kind, msg_type, qos_of, handler in (
            ("target", TargetReturn, G.TARGET_RETURN, view.on_target),
            ("status", SupervisorStatus, G.SUPERVISOR_STATUS, view.on_status),
            ("episode", EpisodeResult, G.EPISODE_RESULT, view.on_episode),
        ):  # the names may be remapped or per robot; QoS is the canonical topic's
            for topic in self.topics[kind]:
                self.node.create_subscription(msg_type, topic, self._count(kind, handler),
                                              monitor_qos(qos_of))
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
