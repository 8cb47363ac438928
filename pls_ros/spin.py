"""The `main()` shared by the pls nodes: init, construct, spin until a signal or the node is done, shut down.

* SIGINT and SIGTERM are handled here, not by rclpy's default handler, so that the node can still publish
  on the way out (the policy node's last fallback action, the sim's last episode result) before the
  context goes down; the process then exits 0.
* A node that cannot start (bad parameter, model contract mismatch, missing file) raises StartupError or
  a ValueError/OSError from its constructor: the message is logged as one clear error line and the
  process exits with EXIT_CONFIG_ERROR, without a traceback.
* An exception escaping a callback stops the node (its `finish` still runs) and exits 1.
* A node that holds work others must acknowledge (the sim's unacknowledged episode results) gets a
  bounded time after the first signal to finish it: `prepare_shutdown()`, then spinning while
  `pending_work()` names something, at most `drain_timeout_s`; a second signal ends the wait.
* A node that stops itself with `done` may set `exit_code` (the sim's watchdog: EXIT_STUCK).
* A node may ask for rclpy's EventsExecutor with `executor_kind = "events"` (the policy's `executor`).
"""

from __future__ import annotations

import signal
import sys
import time
import traceback
from collections.abc import Callable

EXIT_OK = 0
EXIT_CRASH = 1
EXIT_CONFIG_ERROR = 2
EXIT_STUCK = 3  # the node's watchdog found the graph making no progress


class StartupError(RuntimeError):
    """The node refuses to start; the message names the problem and the fix."""


def _drain(node, executor, received: list[str], logger) -> None:
    """After a stop signal: let the node finish what others must acknowledge, within its bound."""
    prepare = getattr(node, "prepare_shutdown", None)
    if prepare is not None:
        prepare()
    pending = getattr(node, "pending_work", None)
    if pending is None:
        return
    bound = float(getattr(node, "drain_timeout_s", 0.0))
    deadline = time.monotonic() + bound
    what = pending()
    if what and bound > 0:
        logger.info(f"{received[0]} received: waiting up to {bound:g} s before stopping, because {what}")
    while what and time.monotonic() < deadline and len(received) < 2:
        executor.spin_once(timeout_sec=0.05)
        what = pending()
    if what:
        logger.warning(f"stopping although {what}")


def run_node(factory: Callable[[], object], name: str, args: list[str] | None = None) -> int:
    """Run the node built by `factory` (a class taking no arguments); returns the exit code.

    The node may define `done` (bool attribute/property: stop spinning, e.g. max_episodes reached) and
    `finish(reason: str)` (last words: called once, while the context is still up).
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(args=args if args is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    logger = rclpy.logging.get_logger(name)
    received: list[str] = []

    def on_signal(signum, _frame) -> None:
        received.append(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    node = None
    code = EXIT_OK
    reason = "done"
    try:
        try:
            node = factory()
        except (StartupError, ValueError, OSError, KeyError) as exc:
            logger.error(f"cannot start: {exc}")
            return EXIT_CONFIG_ERROR
        if getattr(node, "executor_kind", "single_threaded") == "events":
            from rclpy.experimental import EventsExecutor

            executor = EventsExecutor()
        else:
            executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            while not received and not getattr(node, "done", False) and rclpy.ok():
                executor.spin_once(timeout_sec=0.1)
            reason = f"received {received[0]}" if received else "done"
            if received:
                _drain(node, executor, received, logger)
            code = int(getattr(node, "exit_code", 0) or 0)
            if code:
                reason = f"exit code {code}"
        except Exception as exc:  # a callback failed: stop, but still run the node's shutdown
            logger.error(f"stopping after an unexpected error: {exc!r}\n{traceback.format_exc()}")
            reason, code = f"crashed: {exc!r}", EXIT_CRASH
        finish = getattr(node, "finish", None)
        if finish is not None:
            try:
                finish(reason)
            except Exception as exc:
                logger.error(f"error during shutdown: {exc!r}")
                code = code or EXIT_CRASH
        executor.remove_node(node)
        return code
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def node_main(factory: Callable[[], object], name: str) -> Callable[[list[str] | None], None]:
    """A node module's console-script entry point: `main = node_main(MyNode, NODE_NAME)`."""

    def main(args: list[str] | None = None) -> None:
        raise SystemExit(run_node(factory, name, args))

    return main
