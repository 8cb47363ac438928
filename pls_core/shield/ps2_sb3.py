"""stable-baselines3 parts of PS2 phase II (pls_core.shield.ps2): SAC's actor with the layer after it, and a
replay buffer that keeps the executed action. Module-level classes, so that saved models and replay
buffers unpickle."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.sac.policies import Actor, SACPolicy

from pls_core.shield.layer import layer_torch, split_observation


class CILActor(Actor):
    """SAC's squashed Gaussian actor with the layer after it, when acting and in the actor loss. The log
    probability stays the raw action's: the entropy bonus is on what the policy chooses, the layer is a
    fixed map after it."""

    def _layer(self, obs, raw):
        nu = self.action_space.shape[0]
        obs_dim = self.observation_space.shape[0] - 2 * nu - 1
        _, backup, margin, gradient = split_observation(obs.float(), obs_dim, nu)
        return layer_torch(raw, backup, margin, gradient)

    def forward(self, obs, deterministic: bool = False):
        return self._layer(obs, super().forward(obs, deterministic))

    def raw_action(self, obs, deterministic: bool = True):
        """The squashed action before the layer: what an actor on the task observation proposes at run time,
        where the exact shield takes the layer's place."""
        return super().forward(obs, deterministic)

    def action_log_prob(self, obs):
        raw, log_prob = super().action_log_prob(obs)
        return self._layer(obs, raw), log_prob


class CILPolicy(SACPolicy):
    def make_actor(self, features_extractor=None):
        kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return CILActor(**kwargs).to(self.device)


class TaskObservation(BaseFeaturesExtractor):
    """The layered env's observation less the layer's parameters: an actor (and critic) on this one needs
    no layer parameters to act, so at run time they are computed only during training (`actor_input:
    task`). Also takes the task observation alone."""

    def __init__(self, observation_space, obs_dim: int):
        super().__init__(observation_space, features_dim=obs_dim)
        self.obs_dim = obs_dim

    def forward(self, observations):
        return observations[..., :self.obs_dim].float()


class ExecutedActionBuffer(ReplayBuffer):
    """Stores the action the env executed (the shield's verdict on the layer's output), which is what the
    critic must value, instead of the one the policy proposed."""

    def add(self, obs, next_obs, action, reward, done, infos):
        executed = [info.get("executed_action") for info in infos]
        if all(e is not None for e in executed):
            action = np.asarray(executed, np.float32).reshape(np.shape(action))
        super().add(obs, next_obs, action, reward, done, infos)
