"""Shared, session-cached artefacts for the experiment tests (no tests in this module).

A tiny CDT for SafetySwimmerVelocity-v1, trained on random-action episodes and exported. The Swimmer is
cheap to simulate and its velocity limit is low, so even a barely trained policy has episode costs in
the tens: "unsafe" counts at a threshold in that range are not trivially zero.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from test_cdt_support import rollout_dataset

TASK = "SafetySwimmerVelocity-v1"


@functools.cache
def models_dir() -> Path:
    """A --models-dir holding <TASK>/policy.onnx, a `tiny`-preset CDT."""
    from pls_core.cdt.trainer import train
    from pls_core.export import export_checkpoint

    root = Path(tempfile.mkdtemp(prefix="pls-experiment-test-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    dataset = rollout_dataset(root / "swimmer.hdf5", task=TASK)
    # Random actions make costly episodes, how costly depends on the processor's physics: sample them
    # uniformly, so cost-weighted sampling (none above its offset) cannot depend on it.
    result = train(dataset, root / "run", preset_name="tiny", seed=0, progress=False,
                   overrides={"cost_sample": False})
    export_checkpoint(result.checkpoint, root / "models" / TASK / "policy.onnx")
    return root / "models"
