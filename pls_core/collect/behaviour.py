"""Behaviour policies: train them once with stable-baselines3, keep them (small .zip + manifest.json) in
the repository, and load them for rollouts, so a dataset can be regenerated without retraining."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from pls_core.collect.recipes import BehaviourRecipe, CollectionRecipe

MANIFEST = "manifest.json"
# Steps between saved checkpoints of a training (model + replay buffer), so it survives a stop.
CHECKPOINT_EVERY = 50_000


def behaviour_dir(root: Path, task_id: str) -> Path:
    return Path(root) / task_id


def _set_threads(threads: int) -> None:
    """Trainings running side by side share the cores; torch's own pool would oversubscribe them."""
    import torch

    torch.set_num_threads(max(1, threads))


def evaluate_policy(model, task_id: str, episodes: int, seed: int) -> dict:
    """Mean raw reward, cost and length of deterministic episodes: the manifest's record of what it does."""
    from pls_core.envs import make_env
    from pls_core.lockstep import run_lockstep

    def act(obs, active, t):
        return model.predict(obs, deterministic=True)[0]

    env = make_env(task_id)
    try:  # one episode at a time on one env, as the recorded evaluations were made
        totals = [run_lockstep([env], [seed + k], act)[0] for k in range(episodes)]
    finally:
        env.close()
    return {"reward": float(np.mean([t.reward_return for t in totals])),
            "cost": float(np.mean([t.cost_return for t in totals])),
            "length": float(np.mean([t.length for t in totals]))}


def partial_dir(out_dir: Path, name: str) -> Path:
    """Where an unfinished training keeps its model and replay buffer between chunks (git-ignored)."""
    return Path(out_dir) / ".partial" / name


def _resume_key(recipe: BehaviourRecipe, seed: int) -> dict:
    """What a checkpoint must match to be resumed: everything but the step budget (as JSON reads it)."""
    return json.loads(json.dumps({**asdict(recipe), "timesteps": None, "seed": seed}))


def _checkpoint_progress(partial: Path, recipe: BehaviourRecipe, seed: int) -> dict | None:
    """The saved progress of an unfinished training to resume, None if there is none."""
    if not (partial / "model.zip").exists():
        return None
    done = json.loads((partial / "progress.json").read_text())
    ours = _resume_key(recipe, seed)
    if done.get("recipe") != ours:  # the step budget may change; what is trained may not
        raise ValueError(f"{partial} holds an unfinished training of another recipe or seed "
                         f"({done.get('recipe')}, now {ours}); delete that folder, or pass --retrain")
    return done


def _new_model(task_id: str, recipe: BehaviourRecipe, seed: int, out_dir: Path):
    """(model, steps already done, seconds already spent): resumed, fine-tuned or fresh."""
    from stable_baselines3 import SAC
    from stable_baselines3.common.monitor import Monitor

    from pls_core.collect.wrappers import CostPenaltyEnv
    from pls_core.envs import make_env

    partial = partial_dir(out_dir, recipe.name)
    done = _checkpoint_progress(partial, recipe, seed)  # checked before anything is built
    env = Monitor(CostPenaltyEnv(make_env(task_id, seed=seed), recipe.cost_penalty, recipe.speed_margin))
    if done is not None:
        # A session that stopped mid-training: go on from its last chunk, replay buffer included.
        model = SAC.load(partial / "model.zip", env=env, device="cpu")
        model.load_replay_buffer(partial / "buffer.pkl")
        return model, done["steps"], done["seconds"]
    if recipe.start_from:
        # Fine-tune a competent policy under the penalty (fresh replay buffer: old rewards lack the cost).
        model = SAC.load(out_dir / f"{recipe.start_from}.zip", env=env, device="cpu")
        model.learning_starts = recipe.learning_starts
        model.set_random_seed(seed)
    else:
        model = SAC("MlpPolicy", env, policy_kwargs={"net_arch": list(recipe.net_arch)},
                    learning_starts=recipe.learning_starts, seed=seed, device="cpu", verbose=0)
    return model, 0, 0.0


def train_policy(task_id: str, recipe: BehaviourRecipe, seed: int, out_dir: Path, progress: bool,
                 checkpoint_every: int = CHECKPOINT_EVERY, threads: int = 1) -> dict:
    """Train one SAC policy on r - lambda*c, save it as <out_dir>/<name>.zip, return its manifest entry.

    Long trainings (Ant's fast policy takes hours on two cores) save model and replay buffer every
    `checkpoint_every` steps, so a later call resumes where an interrupted one stopped.
    """
    _set_threads(threads)
    if progress:  # a spawned worker starts with unconfigured logging
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    from pls_core.collect.training_log import TrainingLog, without_log_files

    model, steps, seconds = _new_model(task_id, recipe, seed, out_dir)
    without_log_files(model)
    partial = partial_dir(out_dir, recipe.name)
    progress_log = TrainingLog(f"{task_id} {recipe.name}", recipe.timesteps)
    while steps < recipe.timesteps:
        chunk = min(checkpoint_every, recipe.timesteps - steps)
        start = time.perf_counter()
        # The first chunk of a fresh or fine-tuned policy counts from 0 (learning_starts applies to it).
        model.learn(total_timesteps=chunk, callback=progress_log, reset_num_timesteps=steps == 0)
        steps, seconds = steps + chunk, seconds + time.perf_counter() - start
        if steps < recipe.timesteps:
            partial.mkdir(parents=True, exist_ok=True)
            model.save(partial / "model.zip")
            model.save_replay_buffer(partial / "buffer.pkl")
            (partial / "progress.json").write_text(
                json.dumps({"steps": steps, "seconds": seconds, "recipe": _resume_key(recipe, seed)}))
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / f"{recipe.name}.zip")
    shutil.rmtree(partial, ignore_errors=True)
    return {
        **asdict(recipe),
        "file": f"{recipe.name}.zip",
        "algo": "SAC",
        "seed": seed,
        "train_seconds": round(seconds, 1),
        "evaluation": evaluate_policy(model, task_id, episodes=3, seed=10_000 + seed),
    }


def _train_chain(job: tuple) -> tuple[list[dict], dict[str, bytes]]:
    """Policies that build on each other, trained one after the other in one process (a Ray task, or
    this process): (their manifest entries, the saved files by name). `inputs` are saved policies the
    chain starts from, written first where they are missing (a cluster node without the folder), and
    the saved files travel back so the caller's folder holds them wherever the training ran."""
    task_id, chain, seeds, out_dir, progress, threads, inputs = job
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in inputs.items():
        if not (out_dir / name).exists():
            (out_dir / name).write_bytes(data)
    entries = [train_policy(task_id, r, seeds[r.name], out_dir, progress, threads=threads) for r in chain]
    return entries, {e["file"]: (out_dir / e["file"]).read_bytes() for e in entries}


def _chains(recipes: list[BehaviourRecipe]) -> list[list[BehaviourRecipe]]:
    """Group each policy with the one it starts from; independent chains train in parallel."""
    chains: list[list[BehaviourRecipe]] = []
    for r in recipes:
        parent = next((c for c in chains if r.start_from in {m.name for m in c}), None)
        if parent is None:
            chains.append([r])
        else:
            parent.append(r)
    return chains


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def write_manifest(folder: Path, manifest: dict) -> None:
    (Path(folder) / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _scaled(r: BehaviourRecipe, scale: float) -> BehaviourRecipe:
    steps = max(1, int(r.timesteps * scale))
    return replace(r, timesteps=steps, learning_starts=min(r.learning_starts, max(1, steps // 2)))


def ensure_policies(
    recipe: CollectionRecipe, root: Path, seed: int, retrain: bool = False, workers: int = 2,
    progress: bool = True, timestep_scale: float = 1.0, command: str = "", address: str | None = None,
) -> Path:
    """Train the task's behaviour policies that are missing (all of them with `retrain`), independent
    chains side by side as Ray tasks (embedded on `workers` CPUs, or the cluster at `address`).

    `timestep_scale` shrinks the training budget (tests); the manifest records the steps actually used.
    """
    folder = behaviour_dir(root, recipe.task_id)
    manifest = read_manifest(folder)
    entries = manifest.get("policies", {})
    wanted = list(recipe.policies)
    saved = {name: folder / e["file"] for name, e in entries.items()}
    missing = [r for r in wanted if retrain or r.name not in saved or not saved[r.name].exists()]
    if not missing:
        return folder
    if retrain:  # from scratch: an interrupted earlier training is not resumed
        for r in missing:
            shutil.rmtree(partial_dir(folder, r.name), ignore_errors=True)
    scaled = [_scaled(r, timestep_scale) for r in missing]
    seeds = {r.name: seed + i for i, r in enumerate(wanted)}
    chains = _chains(scaled)
    processes = max(1, min(workers, len(chains)))
    # One chain alone (Ant's fast -> safe) gets every worker's core: two threads train SAC ~1.4x faster.
    threads = max(1, workers // processes)
    jobs = []
    for chain in chains:
        names = {r.name for r in chain}
        starts = {r.start_from for r in chain if r.start_from and r.start_from not in names}
        inputs = {f"{s}.zip": (folder / f"{s}.zip").read_bytes() for s in starts}
        jobs.append((recipe.task_id, chain, seeds, str(folder), progress, threads, inputs))
    # Ray tasks (pls_core.parallel; the session's end stops its workers, so no orphan keeps writing
    # checkpoints after a Ctrl-C), or this process with one worker.
    from pls_core.parallel import run_unordered

    folder.mkdir(parents=True, exist_ok=True)
    for index, (chain_entries, files) in run_unordered(_train_chain, jobs, workers=processes,
                                                       address=address, cpus_per_task=threads):
        for name, data in files.items():
            (folder / name).write_bytes(data)
        for r, entry in zip(chains[index], chain_entries, strict=True):
            entries[r.name] = {**entry, "command": command}
    from pls_core import __version__

    write_manifest(folder, {"task_id": recipe.task_id, "pls_version": __version__, "policies": entries})
    return folder


def policies_sha256(folder: Path) -> str:
    """Identity of the saved policies a dataset came from (recorded in the dataset's attrs)."""
    digest = hashlib.sha256()
    for name, entry in sorted(read_manifest(folder).get("policies", {}).items()):
        digest.update(name.encode())
        stem = Path(entry["file"]).stem
        for path in sorted(Path(folder).glob(f"{stem}.*")):  # the policy and its sidecar files
            digest.update(path.read_bytes())
    return digest.hexdigest()


def load_policies(folder: Path) -> dict:
    """name -> SAC model, from a folder written by ensure_policies."""
    from stable_baselines3 import SAC

    entries = read_manifest(folder).get("policies", {})
    return {name: SAC.load(Path(folder) / e["file"], device="cpu") for name, e in entries.items()
            if e.get("algo", "SAC") == "SAC"}
