"""Helpers for the ROS node tests (no tests here): node child processes and an in-process probe node.

Node processes are started exactly as a user would (`python -m pls_ros.<node> --ros-args --params-file
config/<node>.yaml -p key:=value`) in the test's own DDS domain (the `ros_env` fixture). Their output goes
to a log file under build/ros_log/<test>/, read by `wait_for_log` and shown when a test fails.

Waiting is always polling with a bounded timeout: discovery on a loaded 2-core machine can take seconds,
so the bounds are generous, but nothing sleeps for a fixed time hoping that something has happened.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pls_ros.launcher import stop_process

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CONFIG = REPO / "config"
DISCOVERY_TIMEOUT = 60.0  # generous: node start (imports, model load) plus DDS discovery under load


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.02):
    """Poll `predicate` until it returns something truthy; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class NodeProcess:
    """One pls node as a child process, its combined stdout/stderr in a log file."""

    def __init__(self, module: str, env: dict[str, str], params: dict[str, object] | None = None,
                 params_file: Path | None = None, log_name: str | None = None):
        self.module = module
        args = [PYTHON, "-m", f"pls_ros.{module}", "--ros-args"]
        if params_file is not None:
            args += ["--params-file", str(params_file)]
        for key, value in (params or {}).items():
            args += ["-p", f"{key}:={_ros_arg(value)}"]
        log_dir = Path(env.get("ROS_LOG_DIR", REPO / "build" / "ros_log"))
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{log_name or module}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log.write(f"\n==== {' '.join(args)}\n".encode())
        self._log.flush()
        self._offset = self.log_path.stat().st_size
        self.args = args
        self.proc = subprocess.Popen(args, env={**env, "OMP_NUM_THREADS": "1"}, cwd=REPO,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_bytes()[self._offset:].decode(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = DISCOVERY_TIMEOUT) -> re.Match:
        def found():
            match = re.search(pattern, self.output())
            if match is None and self.proc.poll() is not None:
                raise AssertionError(f"{self.module} exited with {self.proc.returncode} before logging "
                                     f"{pattern!r}:\n{self.output()[-3000:]}")
            return match
        return wait_until(found, timeout, f"{self.module} to log {pattern!r}")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.module} still running after {timeout:.0f} s:\n"
                                 f"{self.output()[-3000:]}") from None

    def send(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait; SIGKILL if it does not go. Returns the exit code of a graceful stop, else None."""
        running = self.proc.poll() is None
        code = stop_process(self.proc, signal.SIGTERM, timeout)
        self._log.close()
        return code if not running or code != -signal.SIGKILL else None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _ros_arg(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_ros_arg(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    if value == "":
        return "''"  # `-p name:=` is a parse error; the rule's value is YAML
    return str(value)


class Probe:
    """An in-process rclpy node on its own context and executor thread, recording what it receives.

    `subscribe(name, type, topic, qos)` records (receipt monotonic ns, msg) in `self.received[name]`.
    The test process joins the domain the `ros_env` fixture put in os.environ.
    """

    def __init__(self, name: str = "pls_test_probe"):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        self.context = Context()
        from rclpy.signals import SignalHandlerOptions

        rclpy.init(context=self.context, domain_id=int(os.environ["ROS_DOMAIN_ID"]),
                   signal_handler_options=SignalHandlerOptions.NO)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self.received: dict[str, list] = {}
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            while self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except (ExternalShutdownException, RuntimeError):
            pass

    def subscribe(self, name: str, msg_type, topic: str, qos) -> None:
        self.received[name] = []

        def callback(msg, store=self.received[name]):
            with self.lock:
                store.append((time.monotonic_ns(), msg))
        self.node.create_subscription(msg_type, topic, callback, qos)

    def messages(self, name: str) -> list:
        with self.lock:
            return [m for _, m in self.received[name]]

    def timed(self, name: str) -> list:
        with self.lock:
            return list(self.received[name])

    def publisher(self, msg_type, topic: str, qos):
        return self.node.create_publisher(msg_type, topic, qos)

    def close(self) -> None:
        self.context.try_shutdown()
        self._thread.join(timeout=5)
        self.node.destroy_node()


def publish_target(pub, reward: float, cost: float, iteration: int = 0) -> None:
    from pls_interfaces.msg import TargetReturn

    msg = TargetReturn(reward_return=float(reward), cost_return=float(cost), iteration=iteration)
    pub.publish(msg)


class Launched:
    """`pls COMMAND ARGS...` (sim or robot) as a child process, its output collected line by line."""

    def __init__(self, command: str, args: list[str], env: dict, cwd):
        self.command = command
        # Its own process group: kill() reaches the nodes it started even when the launcher cannot stop them.
        self.proc = subprocess.Popen([sys.executable, "-m", "pls_core.cli", command, *args], env=env, cwd=cwd,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in iter(self.proc.stdout.readline, ""):
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, *needles: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if all(n in text for n in needles):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{needles} not all seen (rc {self.proc.poll()}):\n{self.text()[-5000:]}")

    def finish(self, timeout: float = 60.0) -> int:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"pls {self.command} still running after {timeout:g} s:\n"
                                 f"{self.text()[-5000:]}") from None
        self.thread.join(timeout=10)
        return self.proc.returncode

    def kill(self):
        """Stop the launcher and every node it started (no orphans for later tests): SIGTERM to the whole
        process group, then SIGKILL after a bounded wait."""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def assert_configure_fails(bad: NodeProcess, configure: Callable[[], bool], state: Callable[[], int],
                           log_pattern: str) -> None:
    """A managed node whose configure fails says why (`log_pattern`), stays unconfigured, stops cleanly."""
    from lifecycle_msgs.msg import State

    assert not configure()
    assert state() == State.PRIMARY_STATE_UNCONFIGURED
    bad.wait_for_log(log_pattern)
    assert bad.stop() == 0
