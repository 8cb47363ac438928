"""CDT checkpoint -> ONNX file whose metadata is the model's contract (see runtime.ModelContract).

The graph has a fixed context K and a dynamic batch: inputs states [B,K,obs], actions [B,K,act],
returns_to_go [B,K], costs_to_go [B,K] (raw returns left), timesteps [B,K] int64, padding_mask [B,K] bool
(True = empty slot, left-padded); output action [B,act] = the clipped Gaussian mean at the newest step.
The legacy TorchScript exporter (dynamo=False) is used: fast and clean for this model. Every export is
checked against torch on random and real windows and fails loudly beyond PARITY_TOLERANCE.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch

FORMAT_VERSION = 1
OPSET = 17
PARITY_TOLERANCE = 1e-4
INPUT_NAMES = ("states", "actions", "returns_to_go", "costs_to_go", "timesteps", "padding_mask")
OUTPUT_NAME = "action"


class ExportError(RuntimeError):
    """The exported graph does not reproduce the torch model."""


class _MeanAction(torch.nn.Module):
    """The deployed policy only: the Normal distribution and the cost head stay behind."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, states, actions, returns_to_go, costs_to_go, timesteps, padding_mask):
        return self.model.act(states, actions, returns_to_go, costs_to_go, timesteps, padding_mask)


def cost_transform(config) -> str:
    """How the graph turns the cost-to-go G into its input, as a formula (contract field)."""
    if config.cost_scale == 1.0:
        return f"{config.cost_offset:g} - G"
    return f"({config.cost_offset:g} - G) * {config.cost_scale:g}"


def contract_metadata(model, config, facts: dict, extra_config: dict | None = None) -> dict[str, str]:
    """ONNX metadata_props: every value JSON-encoded; runtime.ModelContract.from_onnx reads them back."""
    values = {
        "format_version": FORMAT_VERSION,
        "task_id": facts["task_id"],
        "obs_dim": facts["obs_dim"],
        "act_dim": facts["act_dim"],
        "act_low": facts["act_low"],
        "act_high": facts["act_high"],
        "context_len": config.context_len,
        "episode_len": facts["episode_len"],
        "max_timestep": model.max_timestep,
        "reward_scale": config.reward_scale,
        "cost_transform": cost_transform(config),
        "obs_mean": facts["obs_mean"],
        "obs_std": facts["obs_std"],
        "dataset_sha256": facts["dataset_sha256"],
        "dataset_stats": facts["dataset_stats"],
        "train_config": {**config.to_dict(), **(extra_config or {})},
        "inputs": "raw: observations in env units, R and G left in return units; the graph normalises, "
        "scales (reward_scale), transforms (cost_transform) and clamps timesteps to max_timestep",
    }
    return {key: json.dumps(value) for key, value in values.items()}


def export_model(model, config, facts: dict, out_path, extra_config: dict | None = None) -> float:
    """Trace `model` (a ConstrainedDecisionTransformer) to ONNX with its contract, check parity, save.

    Returns the worst |onnxruntime - torch| seen; nothing is written when parity fails.
    """
    import onnx

    out_path = Path(out_path)
    policy = _MeanAction(copy.deepcopy(model).cpu()).eval()
    example = random_windows(
        facts, config.context_len, batch=2, max_timestep=model.max_timestep, rng=np.random.default_rng(0)
    )
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notices
        torch.onnx.export(
            policy,
            tuple(torch.from_numpy(example[name]) for name in INPUT_NAMES),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes={name: {0: "batch"} for name in (*INPUT_NAMES, OUTPUT_NAME)},
        )
    graph = onnx.load_from_string(buffer.getvalue())
    for key, value in contract_metadata(model, config, facts, extra_config).items():
        graph.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(graph)
    serialised = graph.SerializeToString()
    worst = check_onnx_parity(policy, serialised, facts, config.context_len, model.max_timestep)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_bytes(serialised)
    tmp.replace(out_path)  # readers (a running policy node) never see a half-written file
    return worst


def load_checkpoint_model(checkpoint_path):
    """Rebuild the CDT from a training checkpoint: (model in eval mode, config, checkpoint dict)."""
    from pls_core.cdt.model import build_model_from_facts
    from pls_core.cdt.presets import CDTConfig

    saved = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    config = CDTConfig.from_dict(saved["config"])
    facts = saved["facts"]
    model = build_model_from_facts(config, facts)
    model.load_state_dict(saved["model"])
    return model.eval(), config, saved


def export_checkpoint(checkpoint_path, out_path) -> float:
    """`pls export`: rebuild the model from a training checkpoint and export it; returns the parity gap."""
    model, config, saved = load_checkpoint_model(checkpoint_path)
    extra = {"preset": saved["preset"], "seed": saved["seed"], "step": saved["step"]}
    return export_model(model, config, saved["facts"], out_path, extra_config=extra)


def random_windows(
    facts: dict, context_len: int, batch: int, max_timestep: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Inputs covering the cases deployment meets: partly padded windows, timesteps past the table."""
    obs_dim, act_dim = facts["obs_dim"], facts["act_dim"]
    scale = np.asarray(facts["obs_std"], dtype=np.float32)
    valid = rng.integers(1, context_len + 1, size=batch)
    padding_mask = np.arange(context_len)[None, :] < (context_len - valid)[:, None]
    real = ~padding_mask
    first = rng.integers(0, max_timestep + 20, size=batch)  # some beyond the table: clamped in the graph
    return {
        "states": (rng.normal(size=(batch, context_len, obs_dim)) * scale * real[..., None]).astype(
            np.float32
        ),
        "actions": (rng.uniform(-1, 1, size=(batch, context_len, act_dim)) * real[..., None]).astype(
            np.float32
        ),
        "returns_to_go": (rng.uniform(-100, 3000, size=(batch, context_len)) * real).astype(np.float32),
        "costs_to_go": (rng.uniform(-20, 200, size=(batch, context_len)) * real).astype(np.float32),
        "timesteps": ((first[:, None] + np.arange(context_len)) * real).astype(np.int64),
        "padding_mask": padding_mask,
    }


def check_onnx_parity(policy, onnx_bytes: bytes, facts: dict, context_len: int, max_timestep: int) -> float:
    """Max |ORT - torch| over random and real windows, batch 1 and batched; raises ExportError if too big."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    cases = [
        random_windows(facts, context_len, batch, max_timestep, np.random.default_rng(batch))
        for batch in (1, 7)
    ]
    cases.append({k: np.asarray(v) for k, v in facts["parity_windows"].items()})
    worst = 0.0
    for inputs in cases:
        with torch.no_grad():
            expected = policy(*(torch.from_numpy(inputs[name]) for name in INPUT_NAMES)).numpy()
        got = session.run([OUTPUT_NAME], {name: inputs[name] for name in INPUT_NAMES})[0]
        if not np.all(np.isfinite(got)):
            raise ExportError("onnxruntime returned non-finite actions; the graph is broken")
        worst = max(worst, float(np.max(np.abs(got - expected))))
    if worst > PARITY_TOLERANCE:
        raise ExportError(
            f"onnxruntime differs from torch by {worst:.2e} (> {PARITY_TOLERANCE:g}); nothing was written"
        )
    return worst
