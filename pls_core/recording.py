"""Recorded episodes (rosbag2 MCAP bags of the robot graph's topics) -> an offline dataset and a fault report.

`pls dataset from-bag` reads the bags `pls sim/robot --record DIR` write (or any MCAP bag holding
pls_interfaces Observation, Action and EpisodeResult messages, found by type, whatever the topic names),
decodes them with mcap_ros2 (no rclpy), rebuilds each episode and turns the usable ones into DSRL-layout
transitions (pls_core.dataset):

* transition t of an episode: the observation of step t, the Action that answered (episode, step t), and
  the reward and cost carried by the observation of step t + 1 (Observation.reward/.cost belong to the
  transition that produced it). The driver publishes no observation after the last step, so the last
  transition's reward and cost are the EpisodeResult's returns minus the per-step sums before it, and its
  next observation is its own observation; a driver that does publish a terminal observation (step ==
  length) has it used, and its totals checked exactly. terminals/timeouts come from EpisodeResult.
* where a step was answered more than once (a lockstep retry, a fallback after the answer), the first
  policy action carrying the episode's target is the one taken, else the first policy action, else the
  first (fallback) action.

A real log has faults. Each is counted and reported, and each has one decision (FAULTS): an episode is
kept, repaired (a duplicate merged, a missing end flag set) or excluded with its reason; nothing is dropped
without a line in the report, and episodes are never merged (an episode index that starts again at step 0
is a new episode).
"""

from __future__ import annotations

import math
import statistics
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pls_core.bag import BagError, bag_files

OBSERVATION, ACTION, RESULT = "observation", "action", "episode_result"
TYPES = {"pls_interfaces/msg/Observation": OBSERVATION, "pls_interfaces/msg/Action": ACTION,
         "pls_interfaces/msg/EpisodeResult": RESULT}
CLOCK_JUMP_PERIODS = 10.0  # a gap between consecutive observations longer than this many control periods

EXCLUDED, REPAIRED, KEPT, IGNORED = "episode excluded", "repaired", "kept, reported", "ignored, reported"
# key -> (what it is, what is done about it)
FAULTS: dict[str, tuple[str, str]] = {
    "missing_steps": ("observations missing inside an episode (dropped messages)", EXCLUDED),
    "missing_actions": ("steps no recorded Action answered (dropped messages)", EXCLUDED),
    "no_result": ("episodes with no EpisodeResult (dropped or never sent): end and last reward unknown",
                  EXCLUDED),
    "unfinished": ("an episode still running when the recording ended (no EpisodeResult)", EXCLUDED),
    "cut_short": ("episodes with fewer steps recorded than their EpisodeResult's length", EXCLUDED),
    "extra_steps": ("observations past their EpisodeResult's length", EXCLUDED),
    "empty_episode": ("EpisodeResults of length 0", EXCLUDED),
    "episode_index_reused": ("an episode index starting again at step 0 (a driver restart): judged as a "
                             "separate episode, never merged", KEPT),
    "duplicate_messages": ("messages received twice (same stamp, same content)", REPAIRED + ": kept once"),
    "duplicate_stamps": ("different messages carrying the same header stamp (a clock that did not advance)",
                         KEPT),
    "conflicting_observations": ("two different observations for one step of an episode", EXCLUDED),
    "conflicting_results": ("two different EpisodeResults for one episode", EXCLUDED),
    "clock_backwards": ("observation stamps going backwards within an episode", KEPT),
    "clock_jumps": ("gaps between consecutive observations longer than the clock-jump limit", KEPT),
    "observation_length_changes": ("changes of the observation length from one message to the next",
                                   "the episodes with the task's length are kept"),
    "wrong_observation_length": ("observations whose length is not the task's", EXCLUDED),
    "wrong_action_length": ("actions whose length is not the task's", EXCLUDED),
    "non_finite": ("NaN or inf in an episode's observations, actions, rewards or costs", EXCLUDED),
    "negative_costs": ("negative per-step costs", EXCLUDED),
    "totals_disagree": ("EpisodeResult returns that disagree with the per-step rewards and costs", EXCLUDED),
    "aborted": ("episodes the robot side reported as aborted (not driven by the recorded actions)", EXCLUDED),
    "no_end_flag": ("EpisodeResults with neither terminated nor truncated", REPAIRED + ": marked a timeout"),
    "results_without_steps": ("EpisodeResults of episodes with no recorded step (ended before the recording "
                              "started)", "nothing to keep, reported"),
    "orphan_actions": ("Actions answering no recorded observation", IGNORED),
    "undecodable": ("messages that could not be decoded", IGNORED),
    "truncated_file": ("MCAP files that end early (a recorder killed before closing): read up to the cut",
                       KEPT),
}
# Normal robot-side behaviour, counted so the numbers add up.
NOTES = {
    "resent_results": "EpisodeResults received again with the same stamp (the robot side resends): kept once",
    "republished_observations": "observations sent again for the same step (a lockstep retry): kept once",
    "multiple_answers": "steps answered by more than one Action: the policy action with the episode's target "
                        "was taken",
    "fallback_steps": "steps driven by the fallback action (Action.fallback), kept as recorded",
}


class RecordingError(ValueError):
    """A recording that cannot be turned into a dataset; the message names the problem and the fix."""


# --------------------------------------------------------------------------------------------------------
# Reading.
@dataclass
class _Obs:
    episode: int
    step: int
    stamp: int
    log: int
    values: np.ndarray
    reward: float
    cost: float


@dataclass
class _Act:
    episode: int
    step: int
    stamp: int
    log: int
    values: np.ndarray
    fallback: bool
    target: tuple[float, float]


@dataclass
class _Res:
    episode: int
    stamp: int
    log: int
    length: int
    terminated: bool
    truncated: bool
    reward_return: float
    cost_return: float
    reason: str
    target: tuple[float, float]

    def same(self, other: _Res) -> bool:
        a, b = vars(self).copy(), vars(other).copy()
        a.pop("log"), b.pop("log")
        return _same(a, b)


def _same(a, b) -> bool:
    """Equality that treats NaN as equal to NaN (targets are NaN when none was followed)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _stamp(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _vector(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).astype(np.float64)


def _decode(kind: str, msg, log: int):
    if kind == OBSERVATION:
        return _Obs(int(msg.episode), int(msg.step), _stamp(msg.header), log, _vector(msg.observation),
                    float(msg.reward), float(msg.cost))
    if kind == ACTION:
        return _Act(int(msg.episode), int(msg.step), _stamp(msg.header), log, _vector(msg.action),
                    bool(msg.fallback), (float(msg.target_reward_return), float(msg.target_cost_return)))
    return _Res(int(msg.episode), _stamp(msg.header), log, int(msg.length), bool(msg.terminated),
                bool(msg.truncated), float(msg.reward_return), float(msg.cost_return), str(msg.reason),
                (float(msg.target_reward_return), float(msg.target_cost_return)))


@dataclass
class BagContents:
    """The pls messages of one bag, decoded, in receive order, and what reading it met."""

    path: Path
    files: list[Path]
    topics: dict[str, list[str]]  # kind -> topic names
    messages: list[tuple[int, str, object]]  # (log time, kind, decoded)
    undecodable: int = 0
    truncated_files: list[str] = field(default_factory=list)


def read_bag(path: str | Path) -> BagContents:
    """Every Observation, Action and EpisodeResult in the bag at `path` (a bag folder or an .mcap file).

    BagError/RecordingError naming the problem and the fix: no such path, not MCAP, no pls topics.
    """
    from mcap.exceptions import McapError
    from mcap_ros2.decoder import DecoderFactory

    path = Path(path).expanduser()
    files = bag_files(path)
    topics: dict[str, list[str]] = {kind: [] for kind in TYPES.values()}
    messages: list[tuple[int, str, object]] = []
    contents = BagContents(path, files, topics, messages)
    for file in files:
        factory = DecoderFactory()
        decoders: dict[int, object] = {}
        found: list[tuple[int, str, object]] = []
        try:
            records, cut = _file_messages(file)
        except (McapError, EOFError, ValueError, OSError, struct.error) as exc:
            why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise BagError(f"{file} cannot be read as MCAP ({why}): it is damaged, or it was cut off before "
                           "its first complete chunk (a recorder killed at once); record again with `pls "
                           "robot --record DIR` and stop it with Ctrl-C") from None
        if cut:
            contents.truncated_files.append(f"{file.name}: {cut}")
        for schema, channel, message in records:
            kind = TYPES.get(_normal_type(schema.name)) if schema is not None else None
            if kind is None:
                continue
            if channel.topic not in topics[kind]:
                topics[kind].append(channel.topic)
            try:
                decoder = decoders.get(channel.id)
                if decoder is None:
                    decoder = decoders[channel.id] = factory.decoder_for(channel.message_encoding, schema)
                if decoder is None:
                    raise ValueError(f"no decoder for encoding {channel.message_encoding!r}")
                found.append((int(message.log_time), kind,
                              _decode(kind, decoder(message.data), int(message.log_time))))
            except Exception:  # a damaged message or an incompatible definition: counted
                contents.undecodable += 1
        messages.extend(found)
    if not any(topics.values()):
        raise RecordingError(f"{path} holds no pls topics (no pls_interfaces Observation, Action or "
                             "EpisodeResult messages); record the robot graph with `pls robot --record DIR` "
                             "(or `ros2 bag record` those topics with storage mcap)")
    for kind, names in topics.items():
        if len(names) > 1:
            raise RecordingError(f"{path} holds {kind} messages on {len(names)} topics ({', '.join(names)}); "
                                 "one bag must hold one robot's episodes: record each robot to its own bag")
    messages.sort(key=lambda item: item[0])
    return contents


def _file_messages(file: Path) -> tuple[list, str]:
    """(schema, channel, message) of every message in one MCAP file, and '' or why the file ends early.

    A finished file is read through its summary; one whose end is missing (a recorder killed before it
    closed the file) is read record by record from the start, up to the cut.
    """
    from mcap.exceptions import McapError
    from mcap.reader import make_reader
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    with open(file, "rb") as stream:
        try:
            return list(make_reader(stream).iter_messages()), ""
        except (McapError, EOFError, ValueError, OSError, struct.error):
            pass
    found: list = []
    schemas: dict[int, object] = {}
    channels: dict[int, object] = {}
    with open(file, "rb") as stream:
        try:
            for record in StreamReader(stream, skip_magic=False).records:
                if isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Channel):
                    channels[record.id] = record
                elif isinstance(record, Message) and record.channel_id in channels:
                    channel = channels[record.channel_id]
                    found.append((schemas.get(channel.schema_id), channel, record))
        except (McapError, EOFError, ValueError, OSError, struct.error) as exc:
            if not found:
                raise
            return found, f"ends early after {len(found)} messages ({type(exc).__name__})"
    return found, "no summary (not closed)"


def _normal_type(name: str) -> str:
    package, _, rest = name.partition("/")
    return f"{package}/msg/{rest.rsplit('/', 1)[-1]}"


# --------------------------------------------------------------------------------------------------------
# Episodes.
@dataclass
class _Episode:
    bag: int
    index: int
    occurrence: int
    obs: dict[int, _Obs] = field(default_factory=dict)
    actions: dict[int, list[_Act]] = field(default_factory=dict)
    result: _Res | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)  # (fault, detail): excluded
    last_step: int = -1

    @property
    def first_log(self) -> int:
        return min((o.log for o in self.obs.values()), default=0)


class Report:
    """Counts of every fault and note, the episodes each touched, and the excluded episodes' reasons."""

    def __init__(self) -> None:
        self.faults: Counter = Counter()
        self.fault_episodes: dict[str, list[str]] = {}
        self.notes: Counter = Counter()
        self.excluded: list[dict] = []

    def fault(self, key: str, count: int = 1, episode: str | None = None) -> None:
        assert key in FAULTS, key
        self.faults[key] += count
        if episode is not None and episode not in self.fault_episodes.setdefault(key, []):
            self.fault_episodes[key].append(episode)

    def note(self, key: str, count: int = 1) -> None:
        assert key in NOTES, key
        self.notes[key] += count


def _episodes(contents: BagContents, bag: int, report: Report, label) -> list[_Episode]:
    """Group one bag's messages into episodes (index, occurrence), noting duplicates and conflicts."""
    episodes: list[_Episode] = []
    latest: dict[int, _Episode] = {}
    results_by_stamp: dict[int, _Res] = {}
    last_stamp: dict[str, tuple[int, object]] = {}
    last_obs_len: int | None = None
    actions: list[tuple[_Act, bool]] = []

    for _log, kind, msg in contents.messages:
        identity = (msg.episode, getattr(msg, "step", None))
        previous = last_stamp.get(kind)
        stamp_repeated = previous is not None and previous[0] == msg.stamp and previous[1] != identity
        last_stamp[kind] = (msg.stamp, identity)

        if kind == OBSERVATION:
            if last_obs_len is not None and msg.values.size != last_obs_len:
                report.fault("observation_length_changes")
            last_obs_len = msg.values.size
            rec = latest.get(msg.episode)
            restart = rec is not None and msg.step == 0 and (rec.result is not None or rec.last_step > 0)
            if rec is None or restart:
                rec = _Episode(bag, msg.episode, 0 if rec is None else rec.occurrence + 1)
                latest[msg.episode] = rec
                episodes.append(rec)
                if restart:
                    report.fault("episode_index_reused", episode=label(rec))
            if stamp_repeated:
                report.fault("duplicate_stamps", episode=label(rec))
            seen = rec.obs.get(msg.step)
            if seen is None:
                rec.obs[msg.step] = msg
                rec.last_step = max(rec.last_step, msg.step)
            elif np.array_equal(seen.values, msg.values) and _same((seen.reward, seen.cost),
                                                                  (msg.reward, msg.cost)):
                if seen.stamp == msg.stamp:
                    report.fault("duplicate_messages", episode=label(rec))
                else:  # the episode went on from the newest copy: its stamp is the step's time
                    report.note("republished_observations")
                    seen.stamp, seen.log = msg.stamp, msg.log
            else:
                rec.problems.append(("conflicting_observations", f"two different observations for step "
                                                                 f"{msg.step}"))
                report.fault("conflicting_observations", episode=label(rec))
        elif kind == ACTION:
            # Attached once every observation is in: an Action may be received before the observation it
            # answers (two topics, two DDS readers).
            actions.append((msg, stamp_repeated))
        else:
            known = results_by_stamp.get(msg.stamp)
            if known is not None:
                if known.same(msg):
                    report.note("resent_results")
                    continue
                report.fault("duplicate_stamps", episode=f"{msg.episode}")
            elif stamp_repeated:
                report.fault("duplicate_stamps", episode=f"{msg.episode}")
            results_by_stamp[msg.stamp] = msg
            rec = latest.get(msg.episode)
            if rec is None:
                report.fault("results_without_steps", episode=f"{msg.episode}")
                continue
            if rec.result is None:
                rec.result = msg
            elif not rec.result.same(msg):
                rec.problems.append(("conflicting_results", "two different EpisodeResults"))
                report.fault("conflicting_results", episode=label(rec))
    by_index: dict[int, list[_Episode]] = {}
    for rec in episodes:
        by_index.setdefault(rec.index, []).append(rec)
    for msg, stamp_repeated in actions:
        holders = [r for r in by_index.get(msg.episode, []) if msg.step in r.obs]
        if not holders:
            report.fault("orphan_actions")
            continue
        # With an episode index used twice, the occurrence whose observation of that step came nearest.
        rec = min(holders, key=lambda r: abs(r.obs[msg.step].log - msg.log))
        if stamp_repeated:
            report.fault("duplicate_stamps", episode=label(rec))
        answers = rec.actions.setdefault(msg.step, [])
        if any(a.stamp == msg.stamp and np.array_equal(a.values, msg.values) for a in answers):
            report.fault("duplicate_messages", episode=label(rec))
            continue
        answers.append(msg)
    return episodes


@dataclass
class _Built:
    observations: np.ndarray
    next_observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    costs: np.ndarray
    terminal: bool
    timeout: bool
    stamps: list[int]


def _pick_action(answers: list[_Act], target: tuple[float, float]) -> _Act:
    policy = [a for a in answers if not a.fallback]
    for action in policy:
        if _same(action.target, target) or np.allclose(action.target, target, rtol=1e-12, atol=1e-9):
            return action
    return policy[0] if policy else answers[0]


def _plausible(last: float, seen: np.ndarray, floor: float | None = None) -> bool:
    """Is the implied last per-step value within the episode's own range, widened by that range's size?"""
    if floor is not None and last < floor:
        return False
    if seen.size == 0:
        return True
    low, high = float(seen.min()), float(seen.max())
    width = max(high - low, abs(high), abs(low), 1.0)
    return low - width <= last <= high + width


def _build(rec: _Episode, obs_dim: int, act_dim: int, report: Report, label: str,
           last_in_bag: bool) -> _Built | None:
    """The episode's transitions, or None after recording why it is excluded (rec.problems)."""
    res = rec.result
    if res is None:
        key = "unfinished" if last_in_bag else "no_result"
        rec.problems.append((key, "no EpisodeResult: the episode's end and its last step's reward and cost "
                                  "are unknown" + (" (still running when the recording ended)" if last_in_bag
                                                   else "")))
        report.fault(key, episode=label)
        return None
    if res.reason.startswith("aborted"):
        rec.problems.append(("aborted", f"the robot side reported {res.reason!r}"))
        report.fault("aborted", episode=label)
    length = res.length
    if length == 0:
        rec.problems.append(("empty_episode", "its EpisodeResult has length 0"))
        report.fault("empty_episode", episode=label)
        return None
    recorded = sorted(rec.obs)
    missing = [t for t in range(length) if t not in rec.obs]
    if missing:
        tail = min(missing) > max((t for t in recorded if t < length), default=-1)
        key = "cut_short" if tail else "missing_steps"
        have = length - len(missing)
        detail = (f"{have} of its {length} steps recorded (steps {missing[0]}..{length - 1} missing)" if tail
                  else f"{len(missing)} of its {length} observations missing (steps {_ranges(missing)})")
        rec.problems.append((key, detail))
        report.fault(key, len(missing) if key == "missing_steps" else 1, episode=label)
    extra = [t for t in recorded if t > length]
    if extra:
        rec.problems.append(("extra_steps", f"observations for steps {_ranges(extra)} past its length "
                                            f"{length}"))
        report.fault("extra_steps", len(extra), episode=label)
    terminal_obs = rec.obs.get(length)
    steps = [rec.obs[t] for t in range(length) if t in rec.obs]
    wrong = [o.step for o in [*steps, *([terminal_obs] if terminal_obs else [])] if o.values.size != obs_dim]
    if wrong:
        sizes = sorted({rec.obs[t].values.size for t in wrong})
        rec.problems.append(("wrong_observation_length", f"observations of {sizes} values at steps "
                                                         f"{_ranges(wrong)}; the task has {obs_dim}"))
        report.fault("wrong_observation_length", len(wrong), episode=label)
    unanswered = [t for t in range(length) if t in rec.obs and not rec.actions.get(t)]
    if unanswered:
        rec.problems.append(("missing_actions", f"no Action for steps {_ranges(unanswered)}"))
        report.fault("missing_actions", len(unanswered), episode=label)
    if rec.problems:
        return None

    chosen = []
    for t in range(length):
        answers = rec.actions[t]
        if len(answers) > 1:
            report.note("multiple_answers")
        chosen.append(_pick_action(answers, res.target))
    bad_actions = [a.step for a in chosen if a.values.size != act_dim]
    if bad_actions:
        rec.problems.append(("wrong_action_length", f"actions of the wrong length at steps "
                                                    f"{_ranges(bad_actions)}; the task has {act_dim}"))
        report.fault("wrong_action_length", len(bad_actions), episode=label)
        return None
    report.note("fallback_steps", sum(a.fallback for a in chosen))

    observations = np.stack([o.values for o in steps])
    rewards = np.array([rec.obs[t + 1].reward for t in range(length - 1)], dtype=np.float64)
    costs = np.array([rec.obs[t + 1].cost for t in range(length - 1)], dtype=np.float64)
    if terminal_obs is not None:  # the driver sent the observation after the last step: exact totals
        last_r, last_c, last_next = terminal_obs.reward, terminal_obs.cost, terminal_obs.values
        total_r, total_c = rewards.sum() + last_r, costs.sum() + last_c
        ok = all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
                 for a, b in ((total_r, res.reward_return), (total_c, res.cost_return)))
        why = (f"per-step sums ({total_r:.6g}, {total_c:.6g}) differ from its result's returns "
               f"({res.reward_return:.6g}, {res.cost_return:.6g})")
    else:
        last_r = res.reward_return - float(rewards.sum())
        last_c = res.cost_return - float(costs.sum())
        last_next = steps[-1].values
        ok = _plausible(last_r, rewards) and _plausible(last_c, costs, floor=-1e-6)
        why = (f"its result's returns ({res.reward_return:.6g}, {res.cost_return:.6g}) leave a last step of "
               f"reward {last_r:.6g} and cost {last_c:.6g}, outside what its other steps show")
    rewards, costs = np.append(rewards, last_r), np.append(costs, max(last_c, 0.0) if ok else last_c)
    actions = np.stack([a.values for a in chosen])
    values = (observations, actions, rewards, costs, last_next)
    if not all(np.isfinite(v).all() for v in values) or not all(
            math.isfinite(x) for x in (res.reward_return, res.cost_return)):
        rec.problems.append(("non_finite", "NaN or inf in its observations, actions, rewards or costs"))
        report.fault("non_finite", episode=label)
        return None
    if not ok:
        rec.problems.append(("totals_disagree", why))
        report.fault("totals_disagree", episode=label)
        return None
    if (costs[:-1] < 0).any():
        rec.problems.append(("negative_costs", f"{int((costs < 0).sum())} negative per-step costs"))
        report.fault("negative_costs", episode=label)
        return None
    next_observations = np.concatenate([observations[1:], last_next[None, :]])
    timeout = res.truncated
    if not res.terminated and not res.truncated:
        report.fault("no_end_flag", episode=label)
        timeout = True
    return _Built(observations, next_observations, actions, rewards, costs, res.terminated, timeout,
                  [o.stamp for o in steps])


def _ranges(values: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3, 7' (at most 8 runs)."""
    runs: list[list[int]] = []
    for v in sorted(values):
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    text = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:8]]
    return ", ".join(text) + (", ..." if len(runs) > 8 else "")


# --------------------------------------------------------------------------------------------------------
# The conversion.
@dataclass
class Conversion:
    dataset: object  # pls_core.dataset.OfflineDataset
    report: dict


def convert(bags: list[str | Path], spec, clock_jump_periods: float = CLOCK_JUMP_PERIODS) -> Conversion:
    """Bags -> (OfflineDataset of the kept episodes, report dict). `spec` is the task's TaskSpec.

    RecordingError when nothing usable is left (the report's reasons in the message).
    """
    import json

    from pls_core.dataset import OfflineDataset

    obs_dim, act_dim = (int(x) for x in spec.sizes)
    report = Report()
    contents = [read_bag(b) for b in bags]
    many = len(contents) > 1

    def label_of(rec: _Episode) -> str:
        text = f"{rec.index}" + (f" (#{rec.occurrence + 1})" if rec.occurrence else "")
        return f"{contents[rec.bag].path.name}:{text}" if many else text

    built: list[tuple[_Episode, _Built]] = []
    counts = Counter()
    recorded = 0
    for number, bag in enumerate(contents):
        if bag.undecodable:
            report.fault("undecodable", bag.undecodable)
        for cut in bag.truncated_files:
            report.fault("truncated_file", episode=cut)
        counts.update(kind for _, kind, _ in bag.messages)
        episodes = _episodes(bag, number, report, label_of)
        recorded += len(episodes)
        last = max(episodes, key=lambda r: r.first_log, default=None)
        for rec in episodes:
            label = label_of(rec)
            # Conflicts found while grouping (already counted) exclude it before anything else is judged.
            out = None if rec.problems else _build(rec, obs_dim, act_dim, report, label, rec is last)
            if out is None:
                reason = "; ".join(detail for _, detail in rec.problems)
                report.excluded.append({"episode": label, "faults": sorted({k for k, _ in rec.problems}),
                                        "reason": reason})
            else:
                built.append((rec, out))

    period_s = _control_period(spec, built)
    if period_s:
        for rec, out in built:
            gaps = np.diff(np.asarray(out.stamps, dtype=np.int64)) / 1e9
            back, jumps = int((gaps < 0).sum()), int((gaps > clock_jump_periods * period_s).sum())
            if back:
                report.fault("clock_backwards", back, episode=label_of(rec))
            if jumps:
                report.fault("clock_jumps", jumps, episode=label_of(rec))

    summary = {
        "bags": [str(b.path) for b in contents],
        "files": [str(f) for b in contents for f in b.files],
        "topics": {kind: sorted({t for b in contents for t in b.topics[kind]}) for kind in TYPES.values()},
        "task_id": spec.task_id, "obs_dim": obs_dim, "act_dim": act_dim,
        "messages": {kind: counts.get(kind, 0) for kind in TYPES.values()},
        "episodes": {"recorded": recorded, "kept": len(built), "excluded": len(report.excluded)},
        "transitions": int(sum(len(out.rewards) for _, out in built)),
        "control_period_s": period_s, "clock_jump_periods": clock_jump_periods,
        "faults": {key: {"count": int(report.faults[key]), "what": FAULTS[key][0], "decision": FAULTS[key][1],
                         "episodes": report.fault_episodes.get(key, [])}
                   for key in FAULTS if report.faults[key] or report.fault_episodes.get(key)},
        "notes": {key: {"count": int(report.notes[key]), "what": NOTES[key]}
                  for key in NOTES if report.notes[key]},
        "excluded": report.excluded,
    }
    if not built:
        reasons = "; ".join(f"episode {e['episode']}: {e['reason']}" for e in report.excluded[:3])
        size_faults = {"wrong_observation_length", "wrong_action_length"}
        wrong_size = all(size_faults & set(e["faults"]) for e in report.excluded)
        fix = (f"is --task {spec.task_id} the robot that was recorded? give its description"
               if report.excluded and wrong_size else
               "record complete episodes (each ended by an EpisodeResult) of this task")
        raise RecordingError(f"no usable episode in {', '.join(summary['bags'])} ({recorded} recorded"
                             + (f"; {reasons}" if reasons else "") + f"); {fix}")

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(out, name) for _, out in built])

    ends = [len(out.rewards) for _, out in built]
    terminals = np.zeros(sum(ends), dtype=bool)
    timeouts = np.zeros(sum(ends), dtype=bool)
    last_index = np.cumsum(ends) - 1
    terminals[last_index] = [out.terminal for _, out in built]
    timeouts[last_index] = [out.timeout for _, out in built]
    attrs = {
        "task_id": spec.task_id,
        "task_spec": spec.to_yaml_text(),
        "source": "pls dataset from-bag",
        "source_bags": json.dumps(summary["bags"]),
        "episodes_recorded": recorded,
        "episodes_kept": len(built),
        "episodes_excluded": len(report.excluded),
        "from_bag_report": json.dumps({k: summary[k] for k in ("messages", "episodes", "transitions",
                                                                "faults", "notes")}),
    }
    dataset = OfflineDataset(observations=cat("observations"), next_observations=cat("next_observations"),
                             actions=cat("actions"), rewards=cat("rewards"), costs=cat("costs"),
                             terminals=terminals, timeouts=timeouts, attrs=attrs)
    return Conversion(dataset, summary)


def _control_period(spec, built) -> float | None:
    """The task's control period, else the median interval between consecutive recorded observations."""
    rate = getattr(spec, "control_rate_hz", None)
    if rate:
        return 1.0 / float(rate)
    gaps = [g for _, out in built for g in np.diff(np.asarray(out.stamps, dtype=np.int64)) / 1e9 if g > 0]
    return float(statistics.median(gaps)) if gaps else None


def report_lines(summary: dict) -> list[str]:
    """The printed report: what was read, kept and excluded, every fault with its count and decision."""
    m, e = summary["messages"], summary["episodes"]
    lines = [f"read {', '.join(summary['bags'])}: {m[OBSERVATION]} observations, {m[ACTION]} actions, "
             f"{m[RESULT]} episode results; {e['recorded']} episodes recorded",
             f"kept {e['kept']} episodes ({summary['transitions']} transitions), excluded {e['excluded']}"]
    if summary["faults"]:
        lines.append("faults (count: what -> decision):")
        for key, fault in summary["faults"].items():
            where = fault["episodes"]
            more = ", ..." if len(where) > 10 else ""
            shown = f" [episodes {', '.join(where[:10])}{more}]" if where else ""
            lines.append(f"  {key}: {fault['count']}: {fault['what']} -> {fault['decision']}{shown}")
    else:
        lines.append("faults: none")
    if summary["excluded"]:
        lines.append("excluded episodes:")
        lines += [f"  episode {item['episode']}: {item['reason']}" for item in summary["excluded"]]
    if summary["notes"]:
        lines.append("notes:")
        lines += [f"  {key}: {note['count']}: {note['what']}" for key, note in summary["notes"].items()]
    return lines
