"""The Constrained Decision Transformer (Liu et al., ICML 2023) as OSRL configures it.

Each timestep contributes four tokens, in this order: return-to-go, cost-to-go, state, action. A learned
timestep embedding is added to all four. A pre-LN causal transformer reads the 4K tokens. The action is
predicted from the state token's output (so it never sees its own action token) as a diagonal Gaussian; an
auxiliary head classifies the step's cost (0 or >0) from the action token's output.

The network takes *raw* quantities: observations in env units, R and G in return units, timesteps as
counters. Observation normalisation, reward scaling, the cost transform and timestep clamping happen here,
inside the graph, so that torch, ONNX and every consumer of the ONNX file agree by construction.
Attention is written out (no nn.MultiheadAttention) so that the legacy ONNX exporter traces it plainly.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Additive attention bias for forbidden keys: large enough to zero the softmax weight, small enough that
# a query whose keys are all forbidden (a padding slot) still gives finite numbers.
MASKED = -1e9
TOKENS_PER_STEP = 4


class CausalSelfAttention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, dropout: float):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.attn_drop = nn.Dropout(dropout)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        head_dim = width // self.num_heads
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(head_dim)) + attn_bias
        weights = self.attn_drop(torch.softmax(scores, dim=-1))
        y = (weights @ v).transpose(1, 2).reshape(batch, tokens, width)
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(embed_dim)
        self.attn = CausalSelfAttention(embed_dim, num_heads, dropout)
        self.ln2 = nn.LayerNorm(embed_dim)
        self.mlp = nn.Sequential(
            nn.Linear(embed_dim, 4 * embed_dim),
            nn.GELU(),
            nn.Linear(4 * embed_dim, embed_dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), attn_bias)
        return x + self.mlp(self.ln2(x))


class ConstrainedDecisionTransformer(nn.Module):
    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        episode_len: int,
        *,
        embed_dim: int,
        num_layers: int,
        num_heads: int,
        context_len: int,
        dropout: float,
        reward_scale: float,
        cost_offset: float,
        cost_scale: float,
        log_std_bounds: tuple[float, float],
        obs_mean,
        obs_std,
        act_low,
        act_high,
    ):
        super().__init__()
        self.context_len = context_len
        self.reward_scale = reward_scale
        self.cost_offset = cost_offset
        self.cost_scale = cost_scale
        self.log_std_bounds = tuple(log_std_bounds)
        # The timestep table covers the episode plus one context of slack, as in OSRL.
        self.max_timestep = episode_len + context_len - 1
        self.register_buffer("obs_mean", torch.as_tensor(obs_mean, dtype=torch.float32).reshape(obs_dim))
        self.register_buffer("obs_std", torch.as_tensor(obs_std, dtype=torch.float32).reshape(obs_dim))
        self.register_buffer("act_low", torch.as_tensor(act_low, dtype=torch.float32).reshape(act_dim))
        self.register_buffer("act_high", torch.as_tensor(act_high, dtype=torch.float32).reshape(act_dim))

        self.timestep_embedding = nn.Embedding(self.max_timestep + 1, embed_dim)
        self.return_embedding = nn.Linear(1, embed_dim)
        self.cost_embedding = nn.Linear(1, embed_dim)
        self.state_embedding = nn.Linear(obs_dim, embed_dim)
        self.action_embedding = nn.Linear(act_dim, embed_dim)
        self.embed_ln = nn.LayerNorm(embed_dim)
        self.embed_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, dropout) for _ in range(num_layers))
        self.out_ln = nn.LayerNorm(embed_dim)
        self.action_mean = nn.Linear(embed_dim, act_dim)
        self.action_log_std = nn.Linear(embed_dim, act_dim)
        self.cost_head = nn.Linear(embed_dim, 2)
        # Fixed causal pattern over the 4K tokens; padding is combined with it per batch.
        causal = torch.tril(torch.ones(4 * context_len, 4 * context_len, dtype=torch.bool))
        self.register_buffer("causal", causal, persistent=False)

    def forward(self, states, actions, returns_to_go, costs_to_go, timesteps, padding_mask):
        """Per-step outputs for a window of K steps (left-padded; padding_mask True marks padding slots).

        Shapes: states [B,K,obs], actions [B,K,act], returns_to_go / costs_to_go [B,K] (raw returns),
        timesteps [B,K] int64, padding_mask [B,K] bool. Returns the Gaussian mean and log-std [B,K,act]
        (from the state tokens) and cost-class logits [B,K,2] (from the action tokens).
        """
        batch, steps = padding_mask.shape
        time = self.timestep_embedding(timesteps.clamp(0, self.max_timestep))
        states = (states - self.obs_mean) / self.obs_std
        tokens = torch.stack(
            (
                self.return_embedding((returns_to_go * self.reward_scale).unsqueeze(-1)),
                self.cost_embedding(((self.cost_offset - costs_to_go) * self.cost_scale).unsqueeze(-1)),
                self.state_embedding(states),
                self.action_embedding(actions),
            ),
            dim=2,
        ) + time.unsqueeze(2)
        tokens = tokens.reshape(batch, TOKENS_PER_STEP * steps, -1)
        x = self.embed_drop(self.embed_ln(tokens))

        key_is_real = (~padding_mask).unsqueeze(-1).expand(batch, steps, TOKENS_PER_STEP)
        key_is_real = key_is_real.reshape(batch, 1, 1, TOKENS_PER_STEP * steps)
        attn_bias = torch.where(self.causal & key_is_real, 0.0, MASKED)
        for block in self.blocks:
            x = block(x, attn_bias)
        x = self.out_ln(x).reshape(batch, steps, TOKENS_PER_STEP, -1)

        state_out, action_out = x[:, :, 2], x[:, :, 3]
        mean = self.action_mean(state_out)
        log_std = self.action_log_std(state_out).clamp(*self.log_std_bounds)
        return mean, log_std, self.cost_head(action_out)

    def act(self, states, actions, returns_to_go, costs_to_go, timesteps, padding_mask) -> torch.Tensor:
        """The deployed action: the Gaussian mean at the newest step (last slot), clipped to the bounds."""
        mean, _, _ = self(states, actions, returns_to_go, costs_to_go, timesteps, padding_mask)
        return torch.maximum(torch.minimum(mean[:, -1], self.act_high), self.act_low)


def build_model(config, obs_dim: int, act_dim: int, episode_len: int, obs_mean, obs_std, act_low, act_high):
    """A CDT sized by a CDTConfig, with the dataset's normalisation and the env's action bounds baked in."""
    return ConstrainedDecisionTransformer(
        obs_dim,
        act_dim,
        episode_len,
        embed_dim=config.embed_dim,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        context_len=config.context_len,
        dropout=config.dropout,
        reward_scale=config.reward_scale,
        cost_offset=config.cost_offset,
        cost_scale=config.cost_scale,
        log_std_bounds=config.log_std_bounds,
        obs_mean=obs_mean,
        obs_std=obs_std,
        act_low=act_low,
        act_high=act_high,
    )


def build_model_from_facts(config, facts: dict):
    """`build_model` from the dataset/env facts a checkpoint stores (dims, episode length, scales, bounds)."""
    return build_model(config, facts["obs_dim"], facts["act_dim"], facts["episode_len"], facts["obs_mean"],
                       facts["obs_std"], facts["act_low"], facts["act_high"])


def gaussian_log_prob_and_entropy(mean, log_std, actions):
    """Per-step log N(a; mean, std) and entropy, each averaged over action dimensions: [B,K] (as OSRL's
    CDT loss, so the loss and the temperature's target do not grow with the number of joints)."""
    log_prob = -0.5 * ((actions - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    entropy = log_std + 0.5 * (1.0 + math.log(2 * math.pi))
    return log_prob.mean(-1), entropy.mean(-1)
