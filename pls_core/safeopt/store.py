"""Durable log of an optimiser run in SQLite (stdlib sqlite3, WAL journal, synchronous=FULL).

The log holds inputs, not model state: the configuration, every accepted episode (in order, with the
iteration it counted toward), every rejected one with its reason, and every decision. The optimiser's
state is a pure function of (configuration, accepted episodes), so resuming replays the episodes and
checks that the replay reproduces the stored decisions; nothing numeric is ever loaded back.
Each write is its own committed transaction: a SIGKILL loses at most the write in flight.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pls_core.safeopt.records import Decision, EpisodeRecord

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS episodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, iteration INTEGER NOT NULL,
    target_reward REAL NOT NULL, target_cost REAL NOT NULL, reward_return REAL NOT NULL,
    cost_return REAL NOT NULL, length INTEGER NOT NULL, terminated INTEGER NOT NULL,
    truncated INTEGER NOT NULL, episode INTEGER, reason TEXT NOT NULL, recorded_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    iteration INTEGER PRIMARY KEY, phase TEXT NOT NULL, target_reward REAL NOT NULL,
    target_cost REAL NOT NULL, verified_safe INTEGER NOT NULL, body TEXT NOT NULL, recorded_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rejections (
    id INTEGER PRIMARY KEY AUTOINCREMENT, iteration INTEGER NOT NULL, body TEXT NOT NULL,
    reason TEXT NOT NULL, recorded_at REAL NOT NULL);
"""


class OptimizerStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit with explicit transactions; usable from the thread an executor calls us on (the
        # optimiser serialises calls, see TargetOptimizer)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # --- meta -----------------------------------------------------------------------------------------

    def config(self) -> dict | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
        return None if row is None else json.loads(row[0])

    def save_config(self, config: dict) -> None:
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('config', ?)", (json.dumps(config),))
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))

    def journal_mode(self) -> str:
        return self._db.execute("PRAGMA journal_mode").fetchone()[0]

    # --- writes ---------------------------------------------------------------------------------------

    def add_episode(self, iteration: int, rec: EpisodeRecord) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO episodes (iteration, target_reward, target_cost, reward_return, cost_return, "
                "length, terminated, truncated, episode, reason, recorded_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (iteration, rec.target[0], rec.target[1], rec.reward_return, rec.cost_return, rec.length,
                 int(rec.terminated), int(rec.truncated), rec.episode, rec.reason, time.time()))

    def add_decision(self, decision: Decision) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO decisions VALUES (?,?,?,?,?,?,?)",
                (decision.iteration, decision.phase.value, decision.target[0], decision.target[1],
                 int(decision.verified_safe), json.dumps(decision.to_dict()), time.time()))

    def add_rejection(self, iteration: int, body: dict, reason: str) -> None:
        with self._transaction():
            self._db.execute("INSERT INTO rejections (iteration, body, reason, recorded_at) VALUES (?,?,?,?)",
                             (iteration, json.dumps(body, default=str), reason, time.time()))

    # --- reads ----------------------------------------------------------------------------------------

    def episodes(self) -> list[tuple[int, EpisodeRecord]]:
        rows = self._db.execute(
            "SELECT iteration, target_reward, target_cost, reward_return, cost_return, length, terminated, "
            "truncated, episode, reason FROM episodes ORDER BY id").fetchall()
        return [(row[0], EpisodeRecord((row[1], row[2]), row[3], row[4], row[5], bool(row[6]), bool(row[7]),
                                       row[8], row[9])) for row in rows]

    def decisions(self) -> list[Decision]:
        rows = self._db.execute("SELECT body FROM decisions ORDER BY iteration").fetchall()
        return [Decision.from_dict(json.loads(row[0])) for row in rows]

    def rejection_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM rejections").fetchone()[0])

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
