"""The managed-node base both pls nodes share: cleanup and shutdown release what configure made."""

from __future__ import annotations

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn


class ReleasingLifecycleNode(LifecycleNode):
    """A lifecycle node whose `_release()` undoes configure; cleanup and shutdown both call it."""

    def _release(self) -> None:
        raise NotImplementedError

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS
