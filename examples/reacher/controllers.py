"""Behaviour controllers for the example Reacher robot: a separate process that drives it through ROS.

It subscribes to the driver's Observation and answers each one with an Action (the same topics the pls
policy node uses), so a recording of it is behaviour data for training, exactly like one of a human with a
joystick. Like the driver, it imports only rclpy, numpy and the pls_interfaces messages (the controller
logic itself, `SpeedCappedReacher`, needs numpy only, so `measure.py` can run it without ROS).

One family of controllers, parametrised by an aggressiveness a in [0, 1]:

* inverse kinematics of the two-link arm (links 0.1 m and 0.11 m, reacher.xml) gives the joint angles that
  put the fingertip on the target (the elbow keeps its current side);
* a cascaded PD law: desired joint speed v = clip(kp * angle error, -v_cap, v_cap), then
  action = kv * (v - joint speed) + Gaussian noise, clipped to [-1, 1];
* a = 0 (calm): v_cap 1.5 rad/s, kp 8 1/s, noise sd 0.05. a = 1 (aggressive): v_cap 30 rad/s, kp 64 1/s,
  noise sd 0.15 (overshoots and swings around the target). In between: v_cap = 1.5 * 20^a,
  kp = 8 * 8^a, noise sd 0.05 + 0.1 a; kv = 0.1 throughout.

`--controller calm` is a = 0, `aggressive` a = 1, `mix` draws a per episode as u^2 with u uniform in [0, 1]
(so that calm and moderate episodes, where the cost thresholds lie, are the majority, and the recorded
episodes still spread from cost 0 to about 45 over the (cost, reward) plane), `--aggressiveness A` fixes
any a. The draw is a function of (seed, episode), so a rerun reproduces it. The per-step noise is drawn
from a generator seeded the same way.

Every Action it publishes has fallback = false and target_reward_return = target_cost_return = NaN: a
behaviour controller follows no target return, and NaN cannot be mistaken for a real target (0, 0), which
a supervisor would count. Run: `python examples/reacher/controllers.py --controller mix` (`--help`).
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
from dataclasses import dataclass

import numpy as np

LINK1, LINK2 = 0.1, 0.11  # upper arm, forearm to fingertip [m] (reacher.xml)
# Reacher-v4's observation: cos q (2), sin q (2), target xy (2), joint speeds (2), fingertip - target (3)
OBS_SIZE, ACT_SIZE = 11, 2
NODE_NAME = "reacher_controller"
AGGRESSIVENESS = {"calm": 0.0, "aggressive": 1.0}


@dataclass(frozen=True)
class Gains:
    speed_cap: float  # rad/s: largest joint speed the position loop asks for
    position_gain: float  # 1/s: desired joint speed per radian of angle error
    velocity_gain: float  # action per rad/s of joint speed error (the motors' gear is 200)
    noise_sd: float  # action noise (Gaussian, per step and joint)


def gains(aggressiveness: float) -> Gains:
    """The controller family's gains at aggressiveness a in [0, 1] (module docstring)."""
    a = float(np.clip(aggressiveness, 0.0, 1.0))
    return Gains(speed_cap=1.5 * 20.0 ** a, position_gain=8.0 * 8.0 ** a, velocity_gain=0.1,
                 noise_sd=0.05 + 0.1 * a)


def wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2.0 * np.pi) - np.pi


class SpeedCappedReacher:
    """IK + cascaded PD with a joint-speed cap; act(observation) -> action in [-1, 1]^2."""

    def __init__(self, aggressiveness: float, rng: np.random.Generator, noise_sd: float | None = None):
        self.aggressiveness = float(aggressiveness)
        self.gains = gains(aggressiveness)
        self.noise_sd = self.gains.noise_sd if noise_sd is None else float(noise_sd)
        self.rng = rng

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        q = np.arctan2(obs[2:4], obs[0:2])
        speed = obs[6:8]
        goal = obs[4:6]
        dist = float(np.clip(np.linalg.norm(goal), abs(LINK1 - LINK2) + 1e-6, LINK1 + LINK2 - 1e-6))
        cos_elbow = np.clip((dist ** 2 - LINK1 ** 2 - LINK2 ** 2) / (2.0 * LINK1 * LINK2), -1.0, 1.0)
        elbow = math.copysign(math.acos(cos_elbow), q[1] if q[1] != 0 else 1.0)
        shoulder = math.atan2(goal[1], goal[0]) - math.atan2(LINK2 * math.sin(elbow),
                                                              LINK1 + LINK2 * math.cos(elbow))
        error = wrap(np.array([shoulder, elbow]) - q)
        g = self.gains
        wanted = np.clip(g.position_gain * error, -g.speed_cap, g.speed_cap)
        action = g.velocity_gain * (wanted - speed) + self.noise_sd * self.rng.standard_normal(ACT_SIZE)
        return np.clip(action, -1.0, 1.0)


def episode_rng(seed: int, episode: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(episode), int(stream)])


def aggressiveness_for(controller: str, fixed: float | None, seed: int, episode: int) -> float:
    """The aggressiveness of one episode: fixed, the controller's, or (mix) drawn as u^2."""
    if fixed is not None:
        return fixed
    if controller == "mix":
        return float(episode_rng(seed, episode, 0).uniform()) ** 2
    return AGGRESSIVENESS[controller]


def controller_for(controller: str, fixed: float | None, seed: int, episode: int,
                   noise_sd: float | None = None) -> SpeedCappedReacher:
    return SpeedCappedReacher(aggressiveness_for(controller, fixed, seed, episode),
                              episode_rng(seed, episode, 1), noise_sd)


# --- the ROS process ----------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="controllers.py", description="Scripted behaviour controllers for the example Reacher robot: "
        "answer each Observation with an Action (fallback false, target NaN).")
    parser.add_argument("--controller", choices=["calm", "aggressive", "mix"], default="mix",
                        help="calm (aggressiveness 0), aggressive (1), mix (drawn per episode; default)")
    parser.add_argument("--aggressiveness", type=float, default=None,
                        help="fix the aggressiveness in [0, 1] for every episode (overrides --controller)")
    parser.add_argument("--noise", type=float, default=None,
                        help="action noise sd (default: the family's, 0.05 calm .. 0.15 aggressive)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-episode draws (default 0)")
    parser.add_argument("--observation-topic", default="/robot/pls/observation")
    parser.add_argument("--action-topic", default="/robot/pls/action")
    args = parser.parse_args(argv)
    if args.aggressiveness is not None and not 0.0 <= args.aggressiveness <= 1.0:
        parser.error(f"--aggressiveness must be in [0, 1], got {args.aggressiveness:g}")
    if args.noise is not None and not (math.isfinite(args.noise) and args.noise >= 0.0):
        parser.error(f"--noise must be a finite number >= 0, got {args.noise:g}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    import rclpy
    from rclpy.utilities import remove_ros_args

    args = parse_args(remove_ros_args(argv)[1:])
    from pls_interfaces.msg import Action, Observation
    from rclpy.exceptions import InvalidTopicNameException
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions
    from rclpy.validate_topic_name import validate_topic_name

    for option, topic in (("--observation-topic", args.observation_topic),
                          ("--action-topic", args.action_topic)):
        try:
            validate_topic_name(topic)
        except InvalidTopicNameException as exc:
            print(f"controllers.py: error: {option} {topic!r} is not a valid ROS topic name: "
                  f"{str(exc).splitlines()[0]}", file=sys.stderr)
            return 2

    # The publisher keeps 100 samples, so a slow reliable reader (a recorder) still gets every action;
    # the subscriber keeps only the newest observation.
    def control_qos(depth: int) -> QoSProfile:
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                          reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)

    received: list[str] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: received.append(signal.Signals(signum).name))
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    node = Node(NODE_NAME)
    log = node.get_logger()
    pub = node.create_publisher(Action, args.action_topic, control_qos(100))
    state = {"episode": None, "controller": None, "episodes": 0, "actions": 0, "ignored": 0}

    def on_observation(msg: Observation) -> None:
        obs = np.asarray(msg.observation, dtype=np.float64)
        if obs.shape != (OBS_SIZE,) or not np.all(np.isfinite(obs)):
            state["ignored"] += 1
            log.error(f"ignored observation {msg.episode}/{msg.step}: {obs.size} values (Reacher has "
                      f"{OBS_SIZE}) or NaN/inf", throttle_duration_sec=5.0)
            return
        if msg.episode != state["episode"]:
            state["episode"], state["episodes"] = msg.episode, state["episodes"] + 1
            state["controller"] = controller_for(args.controller, args.aggressiveness, args.seed,
                                                 msg.episode, args.noise)
            log.info(f"episode {msg.episode}: aggressiveness {state['controller'].aggressiveness:.3f}")
        action = Action()
        action.header.stamp = node.get_clock().now().to_msg()
        action.episode, action.step = msg.episode, msg.step
        action.action = [float(v) for v in state["controller"].act(obs)]
        action.target_reward_return = action.target_cost_return = math.nan
        action.fallback = False
        pub.publish(action)
        state["actions"] += 1

    node.create_subscription(Observation, args.observation_topic, on_observation, control_qos(1))
    what = (f"aggressiveness {args.aggressiveness:g}" if args.aggressiveness is not None
            else f"the {args.controller} controller")
    log.info(f"{what} answers {args.observation_topic} on {args.action_topic}")
    try:
        while not received and rclpy.ok():
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    print(f"reacher controller: stopped ({received[0] if received else 'context shut down'}); "
          f"{state['actions']} actions over {state['episodes']} episodes, {state['ignored']} observations "
          "ignored", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
