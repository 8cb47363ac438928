"""Import safety-gymnasium 1.0.0 on Python 3.11 with mujoco 3 and numpy 2, without editing installed files.

safety-gymnasium 1.0.0 (the newest release) predates these versions; four defects stop it:

1. Python 3.11 dataclasses reject ndarray defaults (`color: np.array = COLOR[...]` in 12 asset classes), so
   `import safety_gymnasium` fails. We wrap `dataclasses.dataclass` only while safety_gymnasium is imported,
   turning such defaults into `field(default_factory=...)`.
2. numpy 2 refuses to turn a 1-element array into a Python scalar implicitly: `model.jnt(array([3]))` and
   `float(sensor)` in `BaseAgent` break every Car/Ant/Doggo navigation task. We re-compile those two
   methods with explicit element access.
3. mujoco 3 rejects gymnasium 0.29.1's swimmer.xml (`collision="predefined"`). We load a copy without it.
4. mujoco 3 added mjvGeom fields that gymnasium's marker code leaves uninitialised, so rgb_array rendering
   of navigation tasks segfaults. We run `mjv_initGeom` on each marker geom first.

Each patch checks that the code it replaces is still there, so a fixed upstream release is left alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import os
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

_PATCHED = False


def _dataclass_with_array_defaults(original):
    def dataclass(cls=None, /, **kwargs):
        def wrap(klass):
            for name in getattr(klass, "__annotations__", {}):
                default = klass.__dict__.get(name)
                if isinstance(default, np.ndarray):
                    frozen = default.copy()
                    setattr(klass, name, dataclasses.field(default_factory=frozen.copy))
            return original(klass, **kwargs)

        return wrap if cls is None else wrap(cls)

    return dataclass


def _recompile_method(cls, name: str, replacements: dict[str, str]) -> bool:
    """Re-define `cls.name` from its source with exact text replacements; False if the text is gone."""
    method = getattr(cls, name)
    source = textwrap.dedent(inspect.getsource(method))
    if not all(old in source for old in replacements):
        return False
    for old, new in replacements.items():
        source = source.replace(old, new)
    namespace = dict(sys.modules[method.__module__].__dict__)
    exec(compile(source, inspect.getsourcefile(method) or "<pls-compat>", "exec"), namespace)  # noqa: S102
    setattr(cls, name, namespace[name])
    return True


def _patch_numpy2_scalars() -> None:
    from safety_gymnasium.bases.base_agent import BaseAgent

    _recompile_method(BaseAgent, "_init_jnt_sensors", {
        ".jnt(joint_id)": ".jnt(int(np.asarray(joint_id).reshape(-1)[0]))",
    })
    _recompile_method(BaseAgent, "obs_sensor", {
        "float(self.get_sensor(sensor))": "float(np.asarray(self.get_sensor(sensor)).reshape(-1)[0])",
    })


def _patch_swimmer_xml() -> None:
    from gymnasium.envs.mujoco import mujoco_env

    original = mujoco_env.MujocoEnv._initialize_simulation

    def initialize_simulation(self, *args, **kwargs):
        text = Path(self.fullpath).read_text()
        if 'collision="predefined"' in text:
            self.fullpath = str(fixed_model_file(Path(self.fullpath).name,
                                                 text.replace('collision="predefined"', "")))
        return original(self, *args, **kwargs)

    mujoco_env.MujocoEnv._initialize_simulation = initialize_simulation


def fixed_model_file(name: str, text: str) -> Path:
    """The corrected model, stored once under a name that carries its content's hash.

    Many processes (Ray workers, test workers) create environments at once: a file is never rewritten in
    place, so none of them can read a half-written one, and a different text gets a different name.
    """
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    stem, _, suffix = name.rpartition(".")
    path = Path(tempfile.gettempdir()) / "pls-compat-xml" / f"{stem}-{digest}.{suffix}"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        scratch.write_text(text)
        os.replace(scratch, path)
    return path


def _patch_marker_geoms() -> None:
    import mujoco
    from gymnasium.envs.mujoco import mujoco_rendering

    original = mujoco_rendering.BaseRender._add_marker_to_scene

    def add_marker_to_scene(self, marker):
        if self.scn.ngeom < self.scn.maxgeom:
            geom = self.scn.geoms[self.scn.ngeom]
            mujoco.mjv_initGeom(geom, mujoco.mjtGeom.mjGEOM_BOX, np.full(3, 0.1), np.zeros(3),
                                np.eye(3).reshape(-1), np.ones(4, dtype=np.float32))
        return original(self, marker)

    mujoco_rendering.BaseRender._add_marker_to_scene = add_marker_to_scene


def import_safety_gymnasium():
    """Return the patched `safety_gymnasium` module (idempotent, thread-unsafe only on first call)."""
    global _PATCHED
    if _PATCHED:
        return sys.modules["safety_gymnasium"]
    original = dataclasses.dataclass
    dataclasses.dataclass = _dataclass_with_array_defaults(original)
    try:
        module = importlib.import_module("safety_gymnasium")
    finally:
        dataclasses.dataclass = original
    _patch_numpy2_scalars()
    _patch_swimmer_xml()
    _patch_marker_geoms()
    _PATCHED = True
    return module
