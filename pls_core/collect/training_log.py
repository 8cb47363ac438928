"""Progress of behaviour-policy training as log lines (two trainings run side by side in worker processes,
where progress bars would overwrite each other)."""

from __future__ import annotations

import logging
import time

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

log = logging.getLogger(__name__)


def without_log_files(model):
    """`model` with an SB3 logger that writes nothing: by default each learn() call of a model at verbose 0
    makes an empty /tmp/SB3-<date> folder, one per checkpoint chunk. Progress goes through TrainingLog."""
    from stable_baselines3.common.logger import Logger

    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


class TrainingLog(BaseCallback):
    """Every tenth of the budget: steps, wall time and the raw reward/cost of recent episodes."""

    def __init__(self, label: str, total_steps: int, recent: int = 10):
        super().__init__()
        self.label = label
        self.every = max(1, total_steps // 10)
        self.recent = recent
        self.episode = np.zeros(2)  # raw reward, cost of the running episode
        self.finished: list[np.ndarray] = []
        self.start = time.perf_counter()

    def _on_step(self) -> bool:
        for info, done in zip(self.locals["infos"], self.locals["dones"], strict=True):
            self.episode += (info["reward"], info["cost"])
            if done:
                self.finished = [*self.finished[-(self.recent - 1):], self.episode]
                self.episode = np.zeros(2)
        if self.num_timesteps % self.every == 0 and self.finished:
            reward, cost = np.mean(self.finished, axis=0)
            log.info("%s: %d steps, %.0f s; last %d episodes: reward %.1f, cost %.1f", self.label,
                     self.num_timesteps, time.perf_counter() - self.start, len(self.finished), reward, cost)
        return True
