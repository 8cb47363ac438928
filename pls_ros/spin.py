"""The `main()` shared by the pls nodes: init, construct, spin until a signal or the node is done, shut down.

* SIGINT and SIGTERM are handled here, not by rclpy's default handler, so that the node can still publish
  on the way out (the policy node's last fallback action, the sim's last episode result) before the
  context goes down; the process then exits 0.
* A node that cannot start (bad parameter, model contract mismatch, missing file) raises StartupError or
  a ValueError/OSError from its constructor: the message is logged as one clear error line and the
  process exits with EXIT_CONFIG_ERROR, without a traceback.
* An exception escaping a callback stops the node (its `on_shutdown` still runs) and exits 1.
"""

from __future__ import annotations

import signal
import sys
import traceback
from collections.abc import Callable

EXIT_OK = 0
EXIT_CRASH = 1
EXIT_CONFIG_ERROR = 2


class StartupError(RuntimeError):
    """The node refuses to start; the message names the problem and the fix."""


def run_node(factory: Callable[[], object], name: str, args: list[str] | None = None) -> int:
    """Run the node built by `factory` (a class taking no arguments); returns the exit code.

    The node may define `done` (bool attribute/property: stop spinning, e.g. max_episodes reached) and
    `on_shutdown(reason: str)` (last words: called once, while the context is still up).
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
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            while not received and not getattr(node, "done", False) and rclpy.ok():
                executor.spin_once(timeout_sec=0.1)
            reason = f"received {received[0]}" if received else "done"
        except Exception as exc:  # a callback failed: stop, but still run the node's shutdown
            logger.error(f"stopping after an unexpected error: {exc!r}\n{traceback.format_exc()}")
            reason, code = f"crashed: {exc!r}", EXIT_CRASH
        on_shutdown = getattr(node, "on_shutdown", None)
        if on_shutdown is not None:
            try:
                on_shutdown(reason)
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
