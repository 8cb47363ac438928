"""`build_optimizer`: the one constructor callers use; it also resumes from an existing store.

Resuming replays the stored episodes through a fresh optimizer (the state is a deterministic function of
configuration and episodes) and checks that the replay reproduces every stored decision exactly, so a
process killed at any point continues with the proposal an uninterrupted run would have made.
"""

from __future__ import annotations

from pathlib import Path

from pls_core.safeopt.base import TargetOptimizer
from pls_core.safeopt.baselines import FixedTargetOptimizer, GPUCBOptimizer, RandomSearchOptimizer
from pls_core.safeopt.config import OptimizerConfig
from pls_core.safeopt.errors import StoreMismatchError
from pls_core.safeopt.pls import PLSOptimizer
from pls_core.safeopt.records import Decision
from pls_core.safeopt.store import OptimizerStore

OPTIMIZERS: dict[str, type[TargetOptimizer]] = {
    cls.method: cls for cls in (PLSOptimizer, FixedTargetOptimizer, GPUCBOptimizer, RandomSearchOptimizer)}


def describe_identity(identity: dict) -> str:
    return ", ".join(f"{key} {value}" for key, value in identity.items())


def build_optimizer(config: OptimizerConfig, store_path: str | Path | None = None,
                    identity: dict | None = None) -> TargetOptimizer:
    """A new optimizer, or the one recorded in `store_path` brought back to where it stopped.

    `identity` says whose run the store holds (the supervisor: owner, task, model hash, threshold): a new
    store records it, and a store recorded for another is refused before anything is replayed, so a robot
    never resumes from the episodes of a simulation (or of another robot or model).
    """
    optimizer = OPTIMIZERS[config.method](config)
    if store_path is None:
        return optimizer
    store = open_store(config, store_path, identity, fleet_size=1)
    replay(optimizer, store)
    optimizer.attach_store(store)
    return optimizer


def open_store(config: OptimizerConfig, store_path: str | Path, identity: dict | None,
               fleet_size: int) -> OptimizerStore:
    """The store at `store_path`, checked to hold this identity's, config's and fleet size's run (a new
    store records them); StoreMismatchError otherwise."""
    store = OptimizerStore(store_path)
    if identity is not None:
        stored_identity = store.identity()
        if stored_identity is None:
            store.save_identity(identity)
        elif stored_identity != identity:
            store.close()
            raise StoreMismatchError(
                f"{store_path} holds the run of {describe_identity(stored_identity)}, not of this one "
                f"({describe_identity(identity)}); use another store path (the sim and robot graphs keep "
                "theirs in runs/sim and runs/robot), or start with the owner, model and threshold that "
                "wrote it")
    stored_config = store.config()
    if stored_config is None:
        store.save_config(config.to_dict())
    elif stored_config != config.to_dict():
        changed = sorted(k for k in set(stored_config) | set(config.to_dict())
                         if stored_config.get(k) != config.to_dict().get(k))
        store.close()
        raise StoreMismatchError(f"{store_path} was written with a different optimizer config (keys "
                                 f"differ: {', '.join(changed)}); resume with the same config, or use a new "
                                 "store path")
    fresh = not store.episodes() and not store.decisions()
    if fresh and fleet_size != 1:  # a store without the key is one robot's, as before fleets existed
        store.save_fleet_size(fleet_size)
    elif store.fleet_size() != fleet_size:
        stored_size = store.fleet_size()
        store.close()
        raise StoreMismatchError(f"{store_path} holds the run of a fleet of {stored_size} robot(s), not of "
                                 f"{fleet_size}; resume it with the same fleet size, or use a new store path")
    return store


def same_choice(a: Decision, b: Decision) -> bool:
    """Same iteration, phase, target, safe-set size and verdict. Bounds may differ in the last bits when
    the replaying process uses another BLAS thread count (summation order); the choices may not."""
    return (a.iteration, a.phase, a.target, a.safe_set_size, a.verified_safe) == \
        (b.iteration, b.phase, b.target, b.safe_set_size, b.verified_safe)


def replay(optimizer: TargetOptimizer, store: OptimizerStore) -> None:
    """Feed the stored episodes to `optimizer` (no writes), check them against the stored decisions, and
    store any decision the log is missing (a kill between an episode write and its decision write)."""
    stored = store.decisions()
    for iteration, rec in store.episodes():
        if iteration != optimizer.iteration:
            raise StoreMismatchError(f"{store.path}: an episode of iteration {iteration} arrived while the "
                                     f"replay is at iteration {optimizer.iteration}; the store is not from "
                                     "this config")
        optimizer.report_episode(rec)  # no store attached yet: validates and counts, writes nothing
    check_replayed(store, stored, optimizer.history)


def check_replayed(store: OptimizerStore, stored: list[Decision], replayed: list[Decision]) -> None:
    """The replayed decisions must repeat the stored ones; store those the log is missing."""
    for old, new in zip(stored, replayed, strict=False):
        if not same_choice(old, new):
            raise StoreMismatchError(f"{store.path}: replay gives a different decision at iteration "
                                     f"{old.iteration} (stored target {old.target}, replayed {new.target}); "
                                     "the store was written by a different code version or config. Use a "
                                     "new store path")
    if len(stored) > len(replayed):
        raise StoreMismatchError(f"{store.path}: holds {len(stored)} decisions but its episodes replay to "
                                 f"{len(replayed)}; the store is damaged. Use a new store path")
    for decision in replayed[len(stored):]:
        store.add_decision(decision)
