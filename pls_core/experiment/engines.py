"""Where an experiment's units of work run: in this process, one after another, or as Ray tasks.

Both engines call pls_core.experiment.work.compute and store each result from this process as soon as
it arrives, so a crash of this process (or, with Ray, of a worker) loses only the units not yet finished,
and the next `pls experiment` into the same folder skips the stored ones. Every unit is seeded by its
own key, not by what ran before it in the same process, so both engines store the same results.

Ray is started and stopped by pls_core.parallel.ray_session (why Ray: that module, and docs/method.md,
"Scale-out").
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pls_core.experiment.work import Unit, compute, outcome, store
from pls_core.parallel import ray_unordered


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
        # A unit that failed every retry raises here; the stored ones stay.
        for index, result in ray_unordered(_compute_in_worker, units, address=self.address,
                                           num_cpus=self.num_cpus):
            store(units[index], result)
            bars.advance(overall)
            bars.console.log(outcome(units[index], result))
