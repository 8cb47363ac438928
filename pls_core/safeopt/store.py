"""Durable log of an optimizer run in SQLite (stdlib sqlite3, WAL journal, synchronous=FULL).

The log holds inputs, not model state: the configuration, every accepted episode (in order, with the
iteration it counted toward), every rejected one with its reason, and every decision. A fleet run
(fleet.py) records a round's members as consecutive decisions (iteration = round x fleet size + robot)
and each episode under its robot's decision, with the fleet size in `meta`: the schema is unchanged.
The optimizer's state is a pure function of (configuration, accepted episodes), so resuming replays
the episodes and checks that the replay reproduces the stored decisions; nothing numeric is ever loaded
back.
Each write is its own committed transaction: a SIGKILL loses at most the write in flight.
An existing file is integrity-checked before anything reads or writes it: a damaged store is never resumed
(its replay would be wrong) nor written (writes into a damaged file can lose more of it); it is refused with
the path of a copy to inspect.
"""

from __future__ import annotations

import json
import shutil
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


class StoreDamagedError(RuntimeError):
    """The SQLite store fails its integrity check; it was neither resumed nor written."""


def _integrity_problem(path: Path) -> str | None:
    """None when `path` is absent, empty or passes `PRAGMA integrity_check`; else what is wrong."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        rows = db.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed"
        return str(exc)
    finally:
        db.close()
    problems = [" ".join(str(row[0]).split()) for row in rows if row[0] != "ok"]
    return "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "") \
        if problems else None


def _copy_aside(path: Path) -> Path:
    """Copy the store (and its WAL/SHM files) to <name>.damaged-<UTC time>; the copy's path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    copy = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while copy.exists():
        copy, n = path.with_name(f"{path.name}.damaged-{stamp}-{n}"), n + 1
    shutil.copy2(path, copy)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            shutil.copy2(side, copy.with_name(copy.name + suffix))
    return copy


class OptimizerStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        problem = _integrity_problem(self.path)
        if problem is not None:
            copy = _copy_aside(self.path)
            raise StoreDamagedError(
                f"the store {self.path} is damaged ({problem}); it was not resumed and nothing was written "
                f"to it. A copy to inspect is at {copy}. Move the damaged file away (or give another store "
                "path) to start a new run, or restore it from a backup"
            )
        # autocommit with explicit transactions; usable from the thread an executor calls us on (the
        # optimizer serialises calls, see TargetOptimizer)
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

    def identity(self) -> dict | None:
        """Whose run this store holds (owner, task, model hash, threshold); None for a store without one."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()
        return None if row is None else json.loads(row[0])

    def save_identity(self, identity: dict) -> None:
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('identity', ?)", (json.dumps(identity),))

    def fleet_size(self) -> int:
        """How many robots the run tunes together (fleet.py); 1 for a store written without one."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'fleet_size'").fetchone()
        return 1 if row is None else int(row[0])

    def save_fleet_size(self, size: int) -> None:
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('fleet_size', ?)", (str(int(size)),))

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

    def episode_ids(self) -> set[int]:
        """The robot side's ids (EpisodeRecord.episode) of every stored result, accepted or rejected."""
        return self.episode_ids_by_robot(1)[0]

    def episode_ids_by_robot(self, fleet_size: int) -> list[set[int]]:
        """episode_ids(), robot by robot: a fleet stores robot k's results (and rejections) under its
        decisions, iterations round x fleet_size + k."""
        ids: list[set[int]] = [set() for _ in range(fleet_size)]
        for iteration, episode in self._db.execute("SELECT iteration, episode FROM episodes"):
            if episode is not None:
                ids[iteration % fleet_size].add(episode)
        for iteration, body in self._db.execute("SELECT iteration, body FROM rejections"):
            episode = json.loads(body).get("episode")
            if isinstance(episode, int):
                ids[iteration % fleet_size].add(episode)
        return ids

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
