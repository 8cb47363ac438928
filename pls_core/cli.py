"""The `pls` command line: one Typer app, one module per stage under pls_core.commands.

Each command module exposes `register(app)` and imports its heavy dependencies lazily, so that
`pls --help` stays fast. Every command's callback is then wrapped by commands.common.handle_errors: a user
error prints one line and exits 2, a bug prints its traceback and asks to be reported.
"""

from __future__ import annotations

import importlib

import typer

from pls_core.commands.common import handle_errors

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="pls: lifetime-safe RL, from dataset to robot.")

COMMAND_MODULES = ("dataset", "collect", "train", "export", "evaluate", "optimize", "ros", "experiment",
                   "demo")

for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"pls_core.commands.{_name}")
    except ModuleNotFoundError as exc:  # a stage not written yet must not break the others
        if exc.name != f"pls_core.commands.{_name}":
            raise
        continue
    _module.register(app)


def _wrap_callbacks(typer_app: typer.Typer, prefix: str = "") -> None:
    for info in typer_app.registered_commands:
        name = (prefix + " " + (info.name or info.callback.__name__.replace("_", "-"))).strip()
        info.callback = handle_errors(name, info.callback)
    for group in typer_app.registered_groups:
        _wrap_callbacks(group.typer_instance, (prefix + " " + (group.name or "")).strip())


_wrap_callbacks(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
