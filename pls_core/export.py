"""CDT checkpoint -> ONNX file whose metadata is the model's contract (see runtime.ModelContract).

The graph has a fixed context K and a dynamic batch: inputs states [B,K,obs], actions [B,K,act],
returns_to_go [B,K], costs_to_go [B,K] (raw returns left), timesteps [B,K] int64, padding_mask [B,K] bool
(True = empty slot, left-padded); output action [B,act] = the clipped Gaussian mean at the newest step.
The legacy TorchScript exporter (dynamo=False) is used: fast and clean for this model. Every export is
checked against torch on random and real windows and fails loudly beyond PARITY_TOLERANCE.
"""

from __future__ import annotations

import contextlib
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


class ExportInputError(ValueError):
    """The checkpoint or the output path cannot be used (a user error); the message names the fix."""


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
        "task_spec": facts.get("task_spec"),
        "train_config": {**config.to_dict(), **(extra_config or {})},
        "inputs": "raw: observations in env units, R and G left in return units; the graph normalises, "
        "scales (reward_scale), transforms (cost_transform) and clamps timesteps to max_timestep",
    }
    return {key: json.dumps(value) for key, value in values.items()}


def export_model(model, config, facts: dict, out_path, extra_config: dict | None = None,
                 source: str = "the model") -> float:
    """Trace `model` (a ConstrainedDecisionTransformer) to ONNX with its contract, check parity, save.

    Returns the worst |onnxruntime - torch| seen. Nothing is written (and no .tmp left) when the graph
    answers its contract's probe inputs with non-finite actions (ExportInputError naming `source`), when
    parity fails (ExportError) or when the file cannot be written (ExportInputError).
    """
    import onnx

    from pls_core.runtime import ContractError, ModelContract, check_probe_actions

    out_path = check_output_path(out_path)
    check_task_sizes(facts, source)
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
    metadata = contract_metadata(model, config, facts, extra_config)
    for key, value in metadata.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(graph)
    serialised = graph.SerializeToString()
    try:
        check_probe_actions(_session(serialised), ModelContract.from_metadata(metadata, source), source,
                            "retrain it, or export an earlier checkpoint; nothing was written")
    except ContractError as exc:
        raise ExportInputError(str(exc)) from None
    worst = check_onnx_parity(policy, serialised, facts, config.context_len, model.max_timestep)
    tmp = out_path.with_name(out_path.name + ".tmp")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(serialised)
        tmp.replace(out_path)  # readers (a running policy node) never see a half-written file
    except OSError as exc:
        raise ExportInputError(
            f"cannot write {out_path} ({exc.strerror or exc}); choose an --out in a writable folder"
        ) from None
    finally:
        with contextlib.suppress(OSError):  # nothing there to remove when the folder itself is unusable
            tmp.unlink(missing_ok=True)
    return worst


def check_task_sizes(facts: dict, source: str) -> None:
    """Refuse a model whose observation/action sizes differ from its task's environment (trained on a
    dataset of another task); tasks pls does not know pass."""
    from pls_core.dataset import task_dims

    dims = task_dims(facts.get("task_id"))
    if dims is not None and (facts["obs_dim"], facts["act_dim"]) != dims:
        raise ExportInputError(
            f"{source} was trained on observations of {facts['obs_dim']} and actions of {facts['act_dim']} "
            f"values, but {facts['task_id']} has {dims[0]} and {dims[1]}: its dataset belongs to another "
            f"task; retrain on a {facts['task_id']} dataset"
        )


def check_output_path(out_path) -> Path:
    """The output file path, refused early when it is a folder (the file would go nowhere)."""
    out_path = Path(out_path)
    if out_path.is_dir():
        raise ExportInputError(
            f"--out {out_path} is a folder; give the .onnx file to write, e.g. {out_path / 'policy.onnx'}"
        )
    return out_path


def _session(onnx_bytes: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def load_checkpoint_model(checkpoint_path):
    """Rebuild the CDT from a training checkpoint: (model in eval mode, config, checkpoint dict).

    ExportInputError when the file is missing, empty, damaged, not a `pls train` checkpoint or holds
    non-finite weights.
    """
    from pls_core.cdt.model import build_model_from_facts
    from pls_core.cdt.presets import CDTConfig
    path = Path(checkpoint_path)
    fix = "use the checkpoint.pt that `pls train` wrote (or train again)"
    if not path.is_file():
        raise ExportInputError(f"checkpoint {path} does not exist or is not a file; {fix}")
    if path.stat().st_size == 0:
        raise ExportInputError(f"checkpoint {path} is empty (0 bytes); {fix}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch/pickle/zip raise many types for a damaged file
        raise ExportInputError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {str(exc)[:200]}): the file is damaged "
            f"or truncated; {fix}"
        ) from None
    try:
        config = CDTConfig.from_dict(saved["config"])
        facts = saved["facts"]
        model = build_model_from_facts(config, facts)
        # With ema_decay the weight average is the policy (pls_core.cdt.presets); else the last step's.
        model.load_state_dict(saved.get("model_ema", saved["model"]))
    except Exception as exc:  # a foreign pickle or a mismatched state dict
        raise ExportInputError(
            f"{path} is not a `pls train` checkpoint of this version ({type(exc).__name__}: "
            f"{str(exc)[:200]}); {fix}"
        ) from None
    bad = sum(int((~torch.isfinite(p)).sum()) for p in model.state_dict().values() if p.is_floating_point())
    if bad:
        raise ExportInputError(
            f"checkpoint {path} holds {bad} NaN/inf weights (training diverged or the file is damaged); "
            "export an earlier checkpoint or retrain"
        )
    return model.eval(), config, saved


def export_checkpoint(checkpoint_path, out_path) -> float:
    """`pls export`: rebuild the model from a training checkpoint and export it; returns the parity gap."""
    check_output_path(out_path)
    model, config, saved = load_checkpoint_model(checkpoint_path)
    extra = {"preset": saved.get("preset"), "seed": saved.get("seed"), "step": saved.get("step")}
    return export_model(model, config, saved["facts"], out_path, extra_config=extra,
                        source=f"checkpoint {checkpoint_path}")


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
    session = _session(onnx_bytes)
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
