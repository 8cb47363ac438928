"""What pls knows about a task or robot, read from one YAML description per task.

The tasks pls ships are descriptions in `pls_core/task_specs/`; a user's robot is the same kind of file
(`--task my_robot.yaml` wherever a command takes `--task`). Every stage reads the spec instead of
hard-coding: collection and the CDT (episode length, relabelling), the safe optimizer (seed box, kernels,
thresholds), the nodes (sizes, control rate). A spec travels with the data: a dataset keeps its YAML text
in attrs["task_spec"], and a model exported from it keeps the same text in its contract, so the robot's
computer needs neither the file nor a simulator to know the task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

SPEC_DIR = Path(__file__).parent / "task_specs"
SIMULATORS = ("safety_gymnasium", "none")


class TaskSpecError(ValueError):
    """A task description that cannot be used; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class TaskSpec:
    task_id: str
    episode_len: int
    # Velocity tasks can end early (unhealthy); navigation tasks only time out.
    can_terminate: bool
    # Episode cost range the data cover (0..max_cost); DSRL's datasets and our collection aim at it.
    max_cost: float
    # CDT Pareto-frontier relabelling (OSRL cdt_configs): polynomial degree, reward ceiling, allowed drop.
    relabel_deg: int
    relabel_max_reward: float
    relabel_max_rew_decrease: float
    # Safe seed box Z0 for PLS, (R_low, R_high) x (G_low, G_high), raw returns (paper Tables 5-6).
    seed_reward_range: tuple[float, float]
    seed_cost_range: tuple[float, float] = (0.0, 5.0)
    # Reward GP kernel (lengthscale, variance): paper App. K.
    reward_kernel: tuple[float, float] = (100.0, 100.0)
    thresholds: tuple[float, ...] = (20.0, 40.0)
    # (observation size, action size), so that processes that never simulate (the robot's policy node)
    # can check a model without importing MuJoCo; a test checks the shipped ones against the envs.
    sizes: tuple[int, int] = (0, 0)
    # DSRL's published (min, max) episode reward return (pls-method.md, "DSRL's per-task normalisation
    # constants"; the velocity tasks' v1 datasets): the scale of the paper's tables; None where DSRL has none.
    dsrl_reward_range: tuple[float, float] | None = None
    # Per-dimension action bounds, one value per action dimension.
    action_low: tuple[float, ...] = ()
    action_high: tuple[float, ...] = ()
    control_rate_hz: float | None = None
    # "safety_gymnasium": pls can simulate it (collect, evaluate, sim graph); "none": a robot that runs
    # only through its own driver (robot graph, datasets from recordings).
    simulator: str = "safety_gymnasium"
    description: str = ""
    reward_meaning: str = ""
    reward_unit: str = ""
    cost_meaning: str = ""
    cost_unit: str = ""
    # MuJoCo model of the robot (absolute path once loaded), e.g. for the per-step shield; None: none given.
    mujoco_model: str | None = None

    @property
    def simulated(self) -> bool:
        return self.simulator != "none"

    def to_dict(self) -> dict:
        """The YAML schema's mapping (what `to_yaml_text` writes and `parse_task_spec` reads)."""
        return {
            "task_id": self.task_id, "description": self.description, "simulator": self.simulator,
            "observation_size": self.sizes[0], "action_size": self.sizes[1],
            "action_low": list(self.action_low), "action_high": list(self.action_high),
            "control_rate_hz": self.control_rate_hz, "episode_len": self.episode_len,
            "can_terminate": self.can_terminate,
            "reward": {"meaning": self.reward_meaning, "unit": self.reward_unit},
            "cost": {"meaning": self.cost_meaning, "unit": self.cost_unit},
            "max_cost": self.max_cost, "thresholds": list(self.thresholds),
            "seed_box": {"reward": list(self.seed_reward_range), "cost": list(self.seed_cost_range)},
            "relabel": {"deg": self.relabel_deg, "max_reward": self.relabel_max_reward,
                        "max_rew_decrease": self.relabel_max_rew_decrease},
            "reward_kernel": {"lengthscale": self.reward_kernel[0], "variance": self.reward_kernel[1]},
            "mujoco_model": self.mujoco_model,
            "dsrl_reward_range": list(self.dsrl_reward_range) if self.dsrl_reward_range else None,
        }

    def to_yaml_text(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# --- reading a description ----------------------------------------------------------------------------

_REQUIRED = ("task_id", "observation_size", "action_size", "episode_len", "max_cost", "seed_box")
_OPTIONAL = ("description", "simulator", "action_low", "action_high", "control_rate_hz", "can_terminate",
             "reward", "cost", "thresholds", "relabel", "reward_kernel", "mujoco_model", "dsrl_reward_range")


def parse_task_spec(values: dict, source: str, base_dir: Path | None = None) -> TaskSpec:
    """A TaskSpec from the YAML schema's mapping; TaskSpecError naming `source`, the key and the fix."""
    if not isinstance(values, dict):
        raise TaskSpecError(f"{source}: a task description is a YAML mapping of keys "
                            f"({', '.join(_REQUIRED)}, ...), not {type(values).__name__}")
    unknown = sorted(set(values) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise TaskSpecError(f"{source}: unknown key(s) {unknown}; known keys: "
                            f"{', '.join(_REQUIRED + _OPTIONAL)}")
    missing = [key for key in _REQUIRED if values.get(key) is None]
    if missing:
        raise TaskSpecError(f"{source}: missing key(s) {missing}; every description needs "
                            f"{', '.join(_REQUIRED)}")
    read = _Reader(values, source)
    task_id = read.text("task_id")
    if not task_id or any(c.isspace() or c in "/\\" for c in task_id):
        raise TaskSpecError(f"{source}: task_id {task_id!r} must be a non-empty name without spaces or "
                            "slashes (it names folders and ROS parameters)")
    obs_size, act_size = read.integer("observation_size", 1), read.integer("action_size", 1)
    action_low = read.bounds("action_low", act_size, -1.0)
    action_high = read.bounds("action_high", act_size, 1.0)
    if any(lo >= hi for lo, hi in zip(action_low, action_high, strict=True)):
        raise TaskSpecError(f"{source}: action_low must be below action_high in every dimension "
                            f"(got {list(action_low)} and {list(action_high)})")
    simulator = read.text("simulator", "none")
    if simulator not in SIMULATORS:
        raise TaskSpecError(f"{source}: simulator {simulator!r} is not one of {', '.join(SIMULATORS)} "
                            "(use none for a robot that runs only through its driver)")
    rate = values.get("control_rate_hz")
    if rate is not None:
        rate = read.number("control_rate_hz", low=0.0, open_low=True)
    max_cost = read.number("max_cost", low=0.0, open_low=True)
    thresholds = tuple(read.number_list("thresholds", [20.0, 40.0], low=0.0, open_low=True))
    seed_box = read.section("seed_box", ("reward", "cost"), {"cost": [0.0, 5.0]})
    seed_reward = read.interval(seed_box, "seed_box.reward")
    seed_cost = read.interval(seed_box, "seed_box.cost", low=0.0)
    relabel = read.section("relabel", ("deg", "max_reward", "max_rew_decrease"),
                           {"deg": 1, "max_reward": seed_reward[1], "max_rew_decrease": 0.0})
    kernel = read.section("reward_kernel", ("lengthscale", "variance"),
                          {"lengthscale": 100.0, "variance": 100.0})
    reward, cost = (read.section(key, ("meaning", "unit"), {"meaning": "", "unit": ""})
                    for key in ("reward", "cost"))
    dsrl = values.get("dsrl_reward_range")
    model = values.get("mujoco_model")
    if model is not None:
        model_path = Path(str(model)).expanduser()
        if not model_path.is_absolute() and base_dir is not None:
            model_path = base_dir / model_path
        model = str(model_path)
    return TaskSpec(
        task_id=task_id,
        episode_len=read.integer("episode_len", 1),
        can_terminate=read.flag("can_terminate", False),
        max_cost=max_cost,
        relabel_deg=read.integer("relabel.deg", 1, value=relabel["deg"]),
        relabel_max_reward=read.number("relabel.max_reward", value=relabel["max_reward"]),
        relabel_max_rew_decrease=read.number("relabel.max_rew_decrease", low=0.0,
                                             value=relabel["max_rew_decrease"]),
        seed_reward_range=seed_reward,
        seed_cost_range=seed_cost,
        reward_kernel=tuple(read.number(f"reward_kernel.{key}", low=0.0, open_low=True, value=kernel[key])
                            for key in ("lengthscale", "variance")),
        thresholds=thresholds,
        sizes=(obs_size, act_size),
        dsrl_reward_range=None if dsrl is None else read.interval(values, "dsrl_reward_range"),
        action_low=action_low,
        action_high=action_high,
        control_rate_hz=rate,
        simulator=simulator,
        description=read.text("description", ""),
        reward_meaning=str(reward["meaning"]), reward_unit=str(reward["unit"]),
        cost_meaning=str(cost["meaning"]), cost_unit=str(cost["unit"]),
        mujoco_model=model,
    )


class _Reader:
    """Typed reads of one description's keys, each failing with the key, the value and what it must be."""

    def __init__(self, values: dict, source: str):
        self.values, self.source = values, source

    def _fail(self, key: str, value, want: str):
        raise TaskSpecError(f"{self.source}: {key} = {value!r} must be {want}")

    def _get(self, key, default, value):
        if value is not None:
            return value
        got = self.values.get(key)
        return default if got is None else got

    def text(self, key: str, default: str | None = None) -> str:
        value = self._get(key, default, None)
        if not isinstance(value, str):
            self._fail(key, value, "a string")
        return value

    def integer(self, key: str, low: int, value=None) -> int:
        value = self._get(key, None, value)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            self._fail(key, value, f"an integer >= {low}")
        return int(value)

    def number(self, key: str, low: float | None = None, open_low: bool = False, value=None) -> float:
        value = self._get(key, None, value)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if ok and low is not None:
            ok = value > low if open_low else value >= low
        if not ok:
            bound = "" if low is None else f" {'>' if open_low else '>='} {low:g}"
            self._fail(key, value, f"a finite number{bound}")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, default, None)
        if not isinstance(value, bool):
            self._fail(key, value, "true or false")
        return value

    def number_list(self, key: str, default, low=None, open_low=False) -> list[float]:
        value = self._get(key, default, None)
        if not isinstance(value, list) or not value:
            self._fail(key, value, "a non-empty list of numbers")
        return [self.number(f"{key}[{i}]", low, open_low, value=v) for i, v in enumerate(value)]

    def bounds(self, key: str, size: int, default: float) -> tuple[float, ...]:
        value = self._get(key, default, None)
        if not isinstance(value, list):
            return (self.number(key, value=value),) * size
        if len(value) != size:
            self._fail(key, value, f"one number, or a list of action_size ({size}) numbers")
        return tuple(self.number(f"{key}[{i}]", value=v) for i, v in enumerate(value))

    def section(self, key: str, fields: tuple[str, ...], defaults: dict) -> dict:
        value = self.values.get(key)
        if value is None:
            value = {}
        if not isinstance(value, dict) or set(value) - set(fields):
            self._fail(key, value, f"a mapping with keys {', '.join(fields)}")
        merged = {**defaults, **value}
        missing = [f for f in fields if merged.get(f) is None]
        if missing:
            self._fail(key, value, f"a mapping that sets {', '.join(missing)}")
        return merged

    def interval(self, values: dict, key: str, low: float | None = None) -> tuple[float, float]:
        leaf = key.split(".")[-1]
        pair = values.get(leaf)
        if not isinstance(pair, list) or len(pair) != 2:
            self._fail(key, pair, "a list [low, high] of two numbers")
        lo, hi = (self.number(f"{key}[{i}]", low, value=v) for i, v in enumerate(pair))
        if lo > hi:
            self._fail(key, pair, "[low, high] with low <= high")
        return (lo, hi)


def load_task_spec(path: str | Path) -> TaskSpec:
    """Read one task description file; TaskSpecError names the file and what is wrong."""
    import yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise TaskSpecError(f"task description {path} does not exist; give a task id or a YAML file "
                            "(examples/reacher/reacher.yaml shows the keys)")
    try:
        values = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TaskSpecError(f"{path} is not valid YAML ({exc}); fix the file") from None
    return parse_task_spec(values, str(path), base_dir=path.resolve().parent)


def task_spec_from_text(text: str, source: str) -> TaskSpec:
    """A spec from the YAML text a dataset or a model contract carries."""
    import yaml

    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TaskSpecError(f"{source}: its task description is not valid YAML ({exc})") from None
    return parse_task_spec(values, source)


# --- the registry ------------------------------------------------------------------------------------

TASKS: dict[str, TaskSpec] = {
    spec.task_id: spec for spec in (load_task_spec(p) for p in sorted(SPEC_DIR.glob("*.yaml")))
}
SHIPPED_TASKS: tuple[str, ...] = tuple(TASKS)

DEFAULT_TASK = "SafetyHalfCheetahVelocity-v1"


def register_task(spec: TaskSpec) -> TaskSpec:
    """Make a user's task known to this process (get_task, the optimizer defaults, the checks).

    A shipped task cannot be redefined, and one id cannot name two different descriptions.
    """
    known = TASKS.get(spec.task_id)
    if known is not None and known != spec:
        what = "a task pls ships" if spec.task_id in SHIPPED_TASKS else "another description already loaded"
        raise TaskSpecError(f"task_id {spec.task_id!r} is {what} with other values; give your robot its own "
                            "task_id")
    TASKS[spec.task_id] = spec
    return spec


def resolve_task(value: str) -> TaskSpec:
    """A task id pls knows, or a path to a task description (.yaml / .yml), which is then registered."""
    if value in TASKS:
        return TASKS[value]
    if value.endswith((".yaml", ".yml")) or Path(value).expanduser().is_file():
        return register_task(load_task_spec(value))
    known = ", ".join(sorted(TASKS))
    raise KeyError(f"unknown task {value!r}; known tasks: {known}; or give the path of a task "
                   "description YAML (examples/reacher/reacher.yaml shows the keys)")


def require_simulator(spec: TaskSpec) -> TaskSpec:
    """`spec`, if pls can simulate it (collection, the sim graph, experiments); TaskSpecError otherwise,
    naming the way a robot without a simulator is used instead."""
    if not spec.simulated:
        raise TaskSpecError(f"pls has no simulator for {spec.task_id} (simulator: none); it runs through its "
                            "own driver: record it with `pls record`, build a dataset with `pls dataset "
                            "from-bag`, tune it with the robot graph (`pls robot --task FILE --model FILE`, "
                            "robot.launch.py)")
    return spec


def register_from_text(text: str | None, source: str) -> TaskSpec | None:
    """Register the spec a dataset or a model contract carries (None when it carries none)."""
    if not text:
        return None
    spec = task_spec_from_text(text, source)
    if spec.task_id in SHIPPED_TASKS:
        return TASKS[spec.task_id]  # a shipped task is the package's own description, whatever was copied
    return register_task(spec)


def get_task(task_id: str) -> TaskSpec:
    """Look a task up, with an error that lists what is known."""
    try:
        return TASKS[task_id]
    except KeyError:
        known = ", ".join(sorted(TASKS))
        raise KeyError(f"unknown task {task_id!r}; known tasks: {known}; a robot of your own is described "
                       "in a YAML file (`--task my_robot.yaml`)") from None
