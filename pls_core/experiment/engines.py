"""Where an experiment's units of work run: in this process, one after another, or as Ray tasks.

Both engines call pls_core.experiment.work.compute and store each result from this process as soon as
it arrives, so a crash of this process (or, with Ray, of a worker) loses only the units not yet finished,
and the next `pls experiment` into the same folder skips the stored ones. Every unit is seeded by its
own key, not by what ran before it in the same process, so both engines store the same results.

Why Ray (docs/method.md, "Scale-out"): the same code runs on this machine's cores (an embedded local
instance) and on a cluster (`--address`), a worker that dies has its task retried, and a task ships its
arguments and result itself; multiprocessing stops at one machine, and Dask's strength is dataframes and
array graphs, not a few hundred long, independent Python calls.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pls_core.experiment.work import Unit, compute, outcome, store

# A worker that dies mid-unit (killed, out of memory) has its unit run again from the start this often.
RAY_TASK_RETRIES = 3


class SerialEngine:
    """This process: one Rollouts per task, reused by the task's units in order (making 20 envs costs
    ~2 s), with a progress bar per unit."""

    def run(self, units: Sequence[Unit], bars, overall) -> None:
        current = None  # (spec, Rollouts)
        try:
            for unit in units:
                if current is None or current[0] != unit.rollouts:
                    if current is not None:
                        current[1].close()
                    current = (unit.rollouts, unit.rollouts.make())
                bar = bars.add_task(unit.label(), total=unit.size)
                result = compute(unit, current[1], on_progress=lambda n, bar=bar: bars.advance(bar, n))
                store(unit, result)
                bars.update(bar, visible=False)
                bars.advance(overall)
                bars.console.log(outcome(unit, result))
        finally:
            if current is not None:
                current[1].close()


def _compute_in_worker(unit: Unit):
    """A Ray task: the unit on a Rollouts of its own, one thread (workers share the machine's cores)."""
    import torch

    torch.set_num_threads(1)
    rollouts = unit.rollouts.make()
    try:
        return compute(unit, rollouts)
    finally:
        rollouts.close()


class RayEngine:
    """Each unit a Ray task. `address` None starts an embedded Ray on this machine with `num_cpus` CPUs
    (None: all), else joins the cluster there (e.g. "127.0.0.1:6379", or "auto")."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        self.address, self.num_cpus = address, num_cpus

    def describe(self) -> str:
        return f"Ray cluster at {self.address}" if self.address else \
            f"embedded Ray, {self.num_cpus or os.cpu_count()} CPUs"

    def run(self, units: Sequence[Unit], bars, overall) -> None:
        import ray

        # Workers import pls_core from where this process does, and run one thread each.
        source = str(Path(__file__).resolve().parents[2])
        runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(
            p for p in (source, os.environ.get("PYTHONPATH", "")) if p),
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}
        options = dict(runtime_env=runtime_env, log_to_driver=False, configure_logging=False)
        scratch = None
        if self.address is None:
            # A short private folder: Ray's socket paths must stay under the 107-byte limit of AF_UNIX.
            scratch = tempfile.mkdtemp(prefix="pls-ray-")
            # Loopback only: an embedded instance serves this machine, nothing else.
            ray.init(num_cpus=self.num_cpus or os.cpu_count(), include_dashboard=False, _temp_dir=scratch,
                     _node_ip_address="127.0.0.1", **options)
        else:
            ray.init(address=self.address, **options)
        try:
            remote = ray.remote(num_cpus=1, max_retries=RAY_TASK_RETRIES)(_compute_in_worker)
            pending = {remote.remote(unit): unit for unit in units}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                unit = pending.pop(done[0])
                result = ray.get(done[0])  # a unit that failed every retry raises here; stored ones stay
                store(unit, result)
                bars.advance(overall)
                bars.console.log(outcome(unit, result))
        finally:
            ray.shutdown()
            if scratch is not None:
                import shutil

                shutil.rmtree(scratch, ignore_errors=True)
