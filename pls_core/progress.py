"""Progress bars for long commands, one library for all of them (rich, which the CLI already uses)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


def progress(enabled: bool = True):
    """A rich Progress with the project's columns: description, bar, done/total, elapsed, remaining, note.
    Disabled: draws nothing (scripts, CI logs)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class Bars(Progress):
        def add_task(self, description, *args, **fields):  # every task has a note, empty by default
            fields.setdefault("note", "")
            return super().add_task(description, *args, **fields)

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[note]}"))
    return Bars(*columns, console=Console(quiet=not enabled), disable=not enabled)


class Bar:
    """One task of a Progress: `advance`, `note` (text after the bar) and `print` (a line above it)."""

    def __init__(self, bars, task_id):
        self.bars, self.task_id = bars, task_id

    def advance(self, n: float = 1) -> None:
        self.bars.advance(self.task_id, n)

    def note(self, text: str) -> None:
        self.bars.update(self.task_id, note=text)

    def print(self, line: str) -> None:
        self.bars.console.print(line, markup=False, highlight=False)


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True, initial: int = 0) -> Iterator[Bar]:
    """A single bar over `total` units, already `initial` of them done (a resumed run)."""
    with progress(enabled) as bars:
        yield Bar(bars, bars.add_task(description, total=total, completed=initial))
