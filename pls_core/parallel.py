"""Independent calls side by side: in this process, or as Ray tasks, and the one place pls starts Ray.

`ray_session(address, num_cpus)` starts an embedded Ray on this machine (loopback only, a private scratch
folder) or joins the cluster at `address`, and always shuts it down; `pls experiment` and `pls collect` both
use it. `run_unordered(fn, items, workers, address)` calls `fn(item)` for every item and yields
`(index, result)` as results arrive: in this process, in order, with one worker and no address; otherwise
each call is a Ray task on `cpus_per_task` CPUs, retried when its worker dies. Callers make their calls
independent of where and in which order they run (each seeded by its own key), so both paths give the
same results on one machine.

Why Ray (docs/method.md, "Scale-out"): the same code runs on this machine's cores and on a cluster, a
worker that dies has its task retried, and a task ships its arguments and result itself; multiprocessing
stops at one machine, and Dask's strength is dataframes and array graphs, not a few hundred long,
independent Python calls.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

# A worker that dies mid-task (killed, out of memory) has its task run again from the start this often.
RAY_TASK_RETRIES = 3


def require_ray():
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is in requirements/base.txt
        raise RuntimeError("Ray is not installed: pip install ray==2.60.0 (requirements/base.txt), or run "
                           "in one process with --workers 1") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None):
    """Ray for the duration of the block: embedded on this machine with `num_cpus` CPUs (None: all) when
    `address` is None, else the cluster at `address` ("127.0.0.1:6379", or "auto")."""
    ray = require_ray()
    # Workers import pls_core from where this process does, and run one thread each.
    source = str(Path(__file__).resolve().parents[1])
    runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(
        p for p in (source, os.environ.get("PYTHONPATH", "")) if p),
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}
    options = dict(runtime_env=runtime_env, log_to_driver=False, configure_logging=False)
    scratch = None
    if address is None:
        # A short private folder: Ray's socket paths must stay under the 107-byte limit of AF_UNIX.
        scratch = tempfile.mkdtemp(prefix="pls-ray-")
        # Loopback only: an embedded instance serves this machine, nothing else.
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, _temp_dir=scratch,
                 _node_ip_address="127.0.0.1", **options)
    else:
        ray.init(address=address, **options)
    try:
        yield ray
    finally:
        ray.shutdown()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def describe(workers: int, address: str | None) -> str:
    if address:
        return f"Ray cluster at {address}"
    return "this process" if workers <= 1 else f"embedded Ray, {workers} CPUs"


def run_unordered(fn: Callable[[Any], Any], items: Sequence[Any], *, workers: int = 1,
                  address: str | None = None, cpus_per_task: int = 1) -> Iterator[tuple[int, Any]]:
    """(index, fn(item)) for every item, in completion order. `fn` must be importable by name (a
    module-level function) for Ray; a task that fails every retry raises here, after the results that
    came before it were yielded."""
    if address is None and workers <= 1:
        for index, item in enumerate(items):
            yield index, fn(item)
        return
    yield from ray_unordered(fn, items, address=address, num_cpus=None if address else workers,
                             cpus_per_task=cpus_per_task)


def ray_unordered(fn: Callable[[Any], Any], items: Sequence[Any], *, address: str | None = None,
                  num_cpus: int | None = None, cpus_per_task: int = 1) -> Iterator[tuple[int, Any]]:
    """run_unordered's Ray path, whatever the number of CPUs: each call a Ray task in a ray_session."""
    with ray_session(address, num_cpus) as ray:
        remote = ray.remote(num_cpus=cpus_per_task, max_retries=RAY_TASK_RETRIES)(fn)
        pending = {remote.remote(item): index for index, item in enumerate(items)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            yield pending.pop(done[0]), ray.get(done[0])
