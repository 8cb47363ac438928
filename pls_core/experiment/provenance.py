"""Where a result came from, recorded by the tool that made it: command, machine, commit and date.

Episodes differ across processors (floating-point kernels differ, e.g. with or without AVX-512, and contact
dynamics amplify the difference), so a result is only comparable digit for digit with one from the same
machine; the report prints this block beside every table.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def machine() -> dict:
    """CPU model, whether it has AVX-512 (None when unknown), logical cores and the OS."""
    info = _cpuinfo()
    flags = info.get("flags", "").split()
    return {"cpu": info.get("model name") or platform.processor() or platform.machine(),
            "avx512": ("avx512f" in flags) if flags else None,
            "cores": os.cpu_count(), "system": platform.system()}


def commit() -> str | None:
    """`git describe --always --dirty` of this checkout, or None outside a git checkout."""
    try:
        done = subprocess.run(["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty", "--abbrev=12"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def command(argv: list[str] | None = None) -> str:
    """The command line as typed: `pls ...` when run through the pls entry point or pls_core.cli."""
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name in ("pls", "cli.py"):
        return shlex.join(["pls", *argv[1:]])
    return shlex.join(argv)


def provenance(argv: list[str] | None = None) -> dict:
    return {"command": command(argv), "machine": machine(), "commit": commit(),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def describe(record: dict | None) -> list[str]:
    """Markdown lines for a provenance record; "not recorded" for whatever a result lacks."""
    record = record or {}
    m = record.get("machine") or {}
    avx = {True: "with AVX-512", False: "no AVX-512"}.get(m.get("avx512"), "AVX-512 unknown")
    where = (f"{m.get('cpu', 'CPU not recorded')}, {m.get('cores', '?')} logical cores, {avx}" if m
             else "not recorded")
    return [f"- command: `{record['command']}`" if record.get("command") else "- command: not recorded",
            f"- machine: {where}",
            f"- commit: {record.get('commit') or 'not recorded'}",
            f"- date: {record.get('date') or 'not recorded'}"]
