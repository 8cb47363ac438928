"""Write pls_core/models/<task>/manifest.json for a shipped model: how to reproduce it, and what it does.

Reads the ONNX file (hash, contract), the training run folder (config.json; wall time from <run>.start /
<run>.end epoch files written by the training command line, when present) and a `pls evaluate` report
(<eval>/summary.json or results.json). Usage:

    python scripts/model_manifest.py --task T --run runs/hopper-cpu --eval <eval folder> \
        --collect-command "pls collect ..." --train-command "..." --evaluate-command "..."
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--eval", type=Path, required=True)
    parser.add_argument("--collect-command", default=None, help="default: the dataset's generator_command")
    parser.add_argument("--train-command", required=True)
    parser.add_argument("--evaluate-command", required=True)
    parser.add_argument("--machine", default="2-core Intel Xeon VM, 1 torch thread per job, no GPU")
    args = parser.parse_args()

    onnx_path = shipped_model_path(args.task)
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
        "onnx_sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "onnx_bytes": onnx_path.stat().st_size,
        "commands": [collect, args.train_command,
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
    }
    out = onnx_path.parent / "manifest.json"
    out.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
