"""What every `pls` command shares: the `--set key=value` parser, input checks and user-error handling.

A user error (a bad option, a damaged input file, an unwritable output folder) ends the command with one
line naming the problem and the fix, exit status 2, no traceback. Anything else is a bug in pls: its
traceback is printed with a line asking to report it, exit status 1.
"""

from __future__ import annotations

import errno
import functools
import math
import os
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import typer

USER_ERROR_EXIT = 2
BUG_EXIT = 1
REPORT_LINE = ("this is a bug in pls, not in your input: please report it with the command line and the "
               "traceback above")

# Exception classes (module, name) that mean "the input cannot be used"; imported only when one is raised,
# so that `pls --help` loads none of these modules.
_USER_ERRORS = (
    ("pls_core.runtime", "ContractError"),
    ("pls_core.dataset", "DatasetError"),
    ("pls_core.export", "ExportInputError"),
    ("pls_core.safeopt.errors", "OptimizerConfigError"),
    ("pls_core.safeopt.errors", "StoreMismatchError"),
    ("pls_core.safeopt.store", "StoreDamagedError"),
    ("pls_core.experiment.settings", "ExperimentError"),
    ("pls_ros.params", "ParameterError"),
)
# OS errors about a path the user chose (an output folder that is read-only, a file where a folder should be).
_PATH_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EISDIR,
                errno.ENOTDIR, errno.EEXIST}


class UserError(ValueError):
    """A command-line input that cannot be used; the message names the problem and the fix."""


def is_user_error(exc: BaseException) -> bool:
    """Whether `exc` reports bad input (exit 2, message only) rather than a bug in pls."""
    import sys

    if isinstance(exc, UserError | typer.BadParameter):
        return True
    if isinstance(exc, OSError) and exc.errno in _PATH_ERRNOS and exc.filename is not None:
        return True
    for module_name, name in _USER_ERRORS:
        module = sys.modules.get(module_name)  # a class not imported yet cannot have been raised
        cls = getattr(module, name, None) if module is not None else None
        if cls is not None and isinstance(exc, cls):
            return True
    return False


def user_message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return (f"cannot use {exc.filename}: {exc.strerror or exc}; choose a path in a folder you can "
                "write to (or fix its permissions)")
    if isinstance(exc, typer.BadParameter):
        return exc.format_message()
    return str(exc.args[0]) if len(exc.args) == 1 else str(exc)


def handle_errors(command: str, callback: Callable) -> Callable:
    """Wrap a command's callback: user errors -> one line on stderr and exit 2; bugs -> traceback, a line
    asking to report it, exit 1. typer.Exit / Abort and usage errors pass through untouched."""

    @functools.wraps(callback)
    def wrapper(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
            raise
        except Exception as exc:
            if is_user_error(exc):
                typer.echo(f"pls {command}: error: {user_message(exc)}", err=True)
                raise typer.Exit(USER_ERROR_EXIT) from None
            traceback.print_exc()
            typer.echo(f"pls {command}: {REPORT_LINE}", err=True)
            raise typer.Exit(BUG_EXIT) from None

    return wrapper


# --- --set key=value ----------------------------------------------------------------------------------------


def parse_value(text: str):
    """One override value as YAML (3e-4, 1e3, true, [20, 40], a string), numbers read as numbers.

    YAML 1.1 reads exponent forms without a dot ("1e3", "3e-4") as strings; a number is what was meant.
    """
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"cannot read {text!r} as a value ({str(exc).splitlines()[0]}); quote it or fix "
                        "the syntax, e.g. key=3e-4, key=true, key=[20, 40]") from None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if value.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity"):
            return number
    return value


def parse_overrides(pairs: list[str] | None, option: str = "--set") -> dict:
    """`--set key=value` pairs -> {key: value}; UserError for a pair without `=` or an empty key."""
    overrides = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{option} expects key=value, got {pair!r}; e.g. {option} learning_rate=3e-4")
        overrides[key.strip()] = parse_value(value.strip())
    return overrides


def check_override_types(overrides: dict, defaults: dict, what: str, option: str = "--set") -> dict:
    """`overrides` with each value in its default's kind; UserError for unknown keys or another kind.

    A number may replace a number (1e3 for an int key becomes 1000, an int for a float key a float), a
    list a tuple/list; a default of None accepts anything. Ranges are the config's own business.
    """
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise UserError(f"{option}: unknown {what} key(s) {unknown}; known: {sorted(defaults)}")
    checked = {}
    for key, value in overrides.items():
        default = defaults[key]
        number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if default is None:
            ok = True
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = number and float(value).is_integer()
            value = int(value) if ok else value
        elif isinstance(default, float):
            ok = number
            value = float(value) if ok else value
        elif isinstance(default, list | tuple):
            ok = isinstance(value, list)
        else:
            ok = isinstance(value, type(default))
        if not ok:
            kind = {bool: "true or false", int: "a whole number", float: "a finite number"}.get(
                type(default), type(default).__name__)
            raise UserError(f"{option} {key}={value!r}: expected {kind} (the default is {default!r})")
        checked[key] = value
    return checked


# --- input checks ------------------------------------------------------------------------------------------


def require(condition: bool, message: str) -> None:
    """UserError(message) unless `condition`: a one-line check for option ranges."""
    if not condition:
        raise UserError(message)


def check_task(task: str, option: str = "--task", simulated: bool = False) -> str:
    """The id of a task pls ships or of a task description YAML (registered); UserError otherwise.

    `simulated`: the command needs pls to simulate the task (collection, the sim graph, experiments).
    """
    from pls_core.tasks import TaskSpecError, require_simulator, resolve_task

    try:
        spec = resolve_task(task)
        if simulated:
            require_simulator(spec)
    except (KeyError, TaskSpecError) as exc:
        raise UserError(f"{option} {task}: {exc.args[0]}") from None
    return spec.task_id


def check_writable_folder(folder: Path, option: str) -> Path:
    """Refuse an output folder that cannot be created or written, before any work is done.

    The nearest existing ancestor must be a folder a file can be created in (tried for real: permission
    bits do not tell for root or read-only mounts).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{option} {folder} is a file, not a folder; give a folder path")
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{option} {folder}: {probe} is a file, so the folder cannot be created there; "
                        "give a path in a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise UserError(f"{option} {folder}: cannot write in {probe} ({exc.strerror or exc}); choose a "
                        "folder you can write to") from None
    return folder


def check_writable_file(path: Path, option: str) -> Path:
    """Refuse an output file path that is a folder or lies in a folder that cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path} is a folder; give the file to write, e.g. {path / 'out'}")
    check_writable_folder(path.parent if str(path.parent) else Path(os.curdir), f"{option}'s folder")
    return path
