"""Resolving relative file parameters (model_path, optimizer_config) the same way in every install.

A relative path is looked up, in this order, and the first existing file wins:

1. the current working directory (what a user typing a path expects);
2. the `pls_ros` package share directory when installed by colcon (share/pls_ros/, which holds config/);
3. the folder that contains the `pls_core` package: the repository root for `pip install -e .`, or
   site-packages for a wheel, where `pls_core/models/<task>/policy.onnx` is installed as package data.

So `pls_core/models/SafetyHalfCheetahVelocity-v1/policy.onnx` and `config/optimizer.yaml` work from the
repo, from a colcon install and from a pip install. Absolute paths and `~` are used as given. Paths to be
written (the supervisor's store) resolve against the working directory only.
"""

from __future__ import annotations

import contextlib
from pathlib import Path


def search_roots() -> list[Path]:
    roots = [Path.cwd()]
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        # OSError: AMENT_PREFIX_PATH unset (a pip-only install has no ament index): skip this root.
        with contextlib.suppress(PackageNotFoundError, ValueError, LookupError, OSError):
            roots.append(Path(get_package_share_directory("pls_ros")))
    except ImportError:
        pass
    import pls_core

    roots.append(Path(pls_core.__file__).resolve().parent.parent)
    return roots


def resolve_existing(value: str, what: str) -> Path:
    """The file `value` names (see module doc); FileNotFoundError listing every place that was tried."""
    path = Path(value).expanduser()
    if path.is_absolute():
        if path.is_file():
            return path
        raise FileNotFoundError(f"{what} {path} does not exist")
    tried = []
    for root in search_roots():
        candidate = root / path
        if candidate.is_file():
            return candidate.resolve()
        tried.append(str(candidate))
    raise FileNotFoundError(f"{what} {value!r} not found; tried: {', '.join(tried)}")


def resolve_output(value: str) -> Path:
    """A path to write to: absolute or `~` as given, relative to the working directory otherwise."""
    return Path(value).expanduser().resolve()
