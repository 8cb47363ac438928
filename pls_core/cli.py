"""The `pls` command line: one Typer app, one module per stage under pls_core.commands.

Each command module exposes `register(app)` and imports its heavy dependencies lazily, so that
`pls --help` stays fast.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="pls: lifetime-safe RL, from dataset to robot.")

COMMAND_MODULES = ("dataset", "collect", "train", "export", "evaluate", "optimise", "ros", "experiment",
                   "demo")

for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"pls_core.commands.{_name}")
    except ModuleNotFoundError as exc:  # a stage not written yet must not break the others
        if exc.name != f"pls_core.commands.{_name}":
            raise
        continue
    _module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
