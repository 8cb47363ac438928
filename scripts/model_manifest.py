"""Write pls_core/models/<task>/manifest.json for a shipped model: how to reproduce it, and what it does.

Reads the ONNX file (hash, contract), the training run folder (config.json; wall time from <run>.start /
<run>.end epoch files written by the training command line, when present) and a `pls evaluate` report
(<eval>/summary.json or results.json), and the seed-box check of `pls evaluate --seed-box`: the four
corners of the box Z0 that PLS starts from must be safe on average at b, the promise the optimiser builds
on, so every shipped model carries it. Usage:

    python scripts/model_manifest.py --task T --run runs/hopper-cpu --eval <eval folder> \
        --collect-command "pls collect ..." --train-command "..." --evaluate-command "..." \
        --seed-box-eval <folder> --seed-box-command "pls evaluate ... --seed-box"

`--only-seed-box` adds or replaces that check in an existing manifest and leaves the rest as it is.
`--replaces-why "..."` records the model the new file replaces (the sha256 its old manifest names) and
why, so a shipped model's history stays readable beside it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
from pathlib import Path

import onnxruntime
import torch

from pls_core.dataset import load_dataset
from pls_core.runtime import ModelContract, shipped_model_path


def _evaluation(eval_dir: Path) -> dict:
    for name in ("summary.json", "results.json", "evaluation.json"):
        if (eval_dir / name).is_file():
            return json.loads((eval_dir / name).read_text())
    raise SystemExit(f"no summary.json/results.json in {eval_dir}; pass the folder that "
                     "`pls evaluate --out` wrote")


def _seed_box(eval_dir: Path, command: str, onnx_path: Path, onnx_bytes: bytes) -> dict:
    """The seed-box check of a `pls evaluate --seed-box` report on `onnx_path` (whose contents are
    `onnx_bytes`), with its command."""
    report = _evaluation(eval_dir)
    if not report.get("seed_box"):
        raise SystemExit(f"{eval_dir} holds no seed-box check; "
                         f"run `pls evaluate --seed-box --out {eval_dir}`")
    evaluated = Path(report["model"])
    if not evaluated.is_file() or evaluated.read_bytes() != onnx_bytes:
        raise SystemExit(f"{eval_dir} evaluated {evaluated}, not the file {onnx_path} holds; "
                         "rerun it on that file")
    return {"command": command, "seed": report["seed"], "model": report["model"], **report["seed_box"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--run", type=Path)
    parser.add_argument("--eval", type=Path)
    parser.add_argument("--collect-command", default=None, help="default: the dataset's generator_command")
    parser.add_argument("--train-command")
    parser.add_argument("--evaluate-command")
    parser.add_argument("--seed-box-eval", type=Path, required=True,
                        help="the folder `pls evaluate --seed-box --out` wrote for the shipped file")
    parser.add_argument("--seed-box-command", required=True)
    parser.add_argument("--only-seed-box", action="store_true",
                        help="only add or replace the seed-box check in the existing manifest")
    parser.add_argument("--onnx", type=Path, default=None,
                        help="the model file the manifest goes beside [default: the task's shipped one]; "
                             "e.g. a candidate under candidates/<task>/")
    parser.add_argument("--filter-command", default=None,
                        help="the `pls dataset filter` command between collect and train")
    parser.add_argument("--note", default=None, help="what the model is and is not (kept as 'note')")
    parser.add_argument("--replaces-why", default=None,
                        help="why this file replaces the one the existing manifest describes (kept as "
                             "'replaces' with that file's sha256)")
    parser.add_argument("--machine", default="2-core Intel Xeon VM, 1 torch thread per job, no GPU")
    args = parser.parse_args()

    onnx_path = (args.onnx or shipped_model_path(args.task)).resolve()
    out = onnx_path.parent / "manifest.json"
    onnx_bytes = onnx_path.read_bytes()
    seed_box = _seed_box(args.seed_box_eval, args.seed_box_command, onnx_path, onnx_bytes)
    sha = hashlib.sha256(onnx_bytes).hexdigest()
    if args.only_seed_box:
        manifest = json.loads(out.read_text())
        if manifest["onnx_sha256"] != sha:
            raise SystemExit(f"{out} describes another file than {onnx_path}; write the whole manifest")
        manifest["seed_box"] = seed_box
        out.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"updated the seed-box check in {out}")
        return
    needed = ("run", "eval", "train_command", "evaluate_command")
    missing = [name for name in needed if not getattr(args, name)]
    if missing:
        parser.error("a whole manifest needs " + ", ".join("--" + m.replace("_", "-") for m in missing))

    replaces = None
    if args.replaces_why:
        old = json.loads(out.read_text()) if out.is_file() else {}
        if old.get("onnx_sha256") in (None, sha):
            raise SystemExit(f"--replaces-why: {out} does not describe another model to replace (it is "
                             "missing or already describes this file); leave --replaces-why out")
        replaces = {"onnx_sha256": old["onnx_sha256"], "why": args.replaces_why}

    contract = ModelContract.from_onnx(onnx_path)
    train = json.loads((args.run / "config.json").read_text())
    dataset_path = Path(train["dataset"])
    dataset = load_dataset(dataset_path)
    rewards, costs, lengths = dataset.episode_returns()
    collect = args.collect_command or str(dataset.attrs.get("generator_command", "unknown"))
    start, end = (args.run.parent / f"{args.run.name}.{s}" for s in ("start", "end"))
    wall = int(end.read_text()) - int(start.read_text()) if start.is_file() and end.is_file() else None
    onnx_rel = onnx_path.relative_to(Path.cwd())
    manifest = {
        "task_id": args.task,
        "file": onnx_path.name,
        "onnx_sha256": sha,
        "onnx_bytes": len(onnx_bytes),
        "commands": [collect, *([args.filter_command] if args.filter_command else []), args.train_command,
                     f"pls export --checkpoint {args.run}/checkpoint.pt --out {onnx_rel}",
                     args.evaluate_command],
        "dataset": {
            "path": str(dataset_path), "sha256": contract.dataset_sha256, "episodes": int(len(rewards)),
            "transitions": int(lengths.sum()),
            "reward_return": {"min": float(rewards.min()), "max": float(rewards.max()),
                              "mean": float(rewards.mean())},
            "cost_return": {"min": float(costs.min()), "max": float(costs.max()),
                            "mean": float(costs.mean())},
            "generator_command": collect,
            "behaviour_sha256": str(dataset.attrs.get("behaviour_sha256", "")),
        },
        "training": {"preset": train["preset"], "seed": train["seed"], "steps": train["config"]["steps"],
                     "wall_time_s": wall, "machine": args.machine, "torch": torch.__version__,
                     "config": train["config"]},
        "export": {"onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
        "evaluation": _evaluation(args.eval),
        **({"replaces": replaces} if replaces else {}),
        "seed_box": seed_box,
    }
    if args.note:
        manifest["note"] = args.note
    out.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
