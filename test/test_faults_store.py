"""Fault injection, the optimizer's store: a damaged SQLite file is never resumed nor written; it is refused
with the path of a copy to inspect, and neither the file nor the copy loses an episode."""

from __future__ import annotations

import sqlite3

import pytest
from test_faults_support import assert_refused, overwrite, pls

from pls_core.safeopt import build_optimizer
from pls_core.safeopt.store import OptimizerStore, StoreDamagedError
from pls_core.safeopt.synthetic import SyntheticProblem, run, synthetic_config

SEED, EVALUATIONS = 3, 3
PAGE = 4096  # SQLite's default page size


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A store with a few evaluations recorded, closed cleanly (WAL checkpointed into the file)."""
    path = tmp_path_factory.mktemp("store") / "store.sqlite"
    config = synthetic_config(seed=SEED)
    optimizer = build_optimizer(config, path)
    run(optimizer, SyntheticProblem.sample(config, SEED), EVALUATIONS)
    optimizer._store.close()
    return path.read_bytes(), config


def episode_count(path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COUNT(*) FROM episodes").fetchone()[0])
    finally:
        db.close()


def copies(folder) -> list:
    """The copies set aside (their -wal/-shm companions not counted)."""
    return sorted(p for p in folder.glob("store.sqlite.damaged-*") if not p.name.endswith(("-wal", "-shm")))


def damaged_copy(recorded, tmp_path, offset: int, data: bytes):
    """The recorded store with `data` written at `offset`; returns (path, its bytes)."""
    path = tmp_path / "store.sqlite"
    path.write_bytes(recorded[0])
    overwrite(path, offset, data)
    return path, path.read_bytes()


@pytest.mark.parametrize("offset", [PAGE + 8, 3 * PAGE + 8])  # cell-pointer arrays of two b-tree pages
def test_a_damaged_page_that_still_opens_is_refused_with_a_copy_to_inspect(recorded, tmp_path, offset):
    path, before = damaged_copy(recorded, tmp_path, offset, b"\xa5" * 64)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)  # the fault: the file opens, the check fails
    db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    assert db.execute("PRAGMA integrity_check").fetchone()[0] != "ok"
    db.close()
    with pytest.raises(StoreDamagedError, match="is damaged") as refusal:
        build_optimizer(recorded[1], path)
    aside = copies(tmp_path)
    assert len(aside) == 1 and str(aside[0]) in str(refusal.value)
    assert path.read_bytes() == before and aside[0].read_bytes() == before  # not written, copied whole
    assert "nothing was written" in str(refusal.value)


def test_the_damaged_episode_table_is_kept_for_inspection_not_overwritten(recorded, tmp_path):
    good = tmp_path / "good.sqlite"
    good.write_bytes(recorded[0])
    episodes = episode_count(good)
    assert episodes == EVALUATIONS * recorded[1].episodes_per_evaluation
    path, before = damaged_copy(recorded, tmp_path, 3 * PAGE + 8, b"\xa5" * 64)
    for _ in range(2):  # asking twice writes nothing either, and makes a second copy
        with pytest.raises(StoreDamagedError):
            OptimizerStore(path)
    assert path.read_bytes() == before and len(copies(tmp_path)) == 2


def test_a_file_that_is_not_a_database_is_refused(recorded, tmp_path):
    path, before = damaged_copy(recorded, tmp_path, 0, b"this is not an SQLite header!!!!")
    with pytest.raises(StoreDamagedError, match="not a database") as refusal:
        OptimizerStore(path)
    aside = copies(tmp_path)
    assert len(aside) == 1 and str(aside[0]) in str(refusal.value) and aside[0].read_bytes() == before
    assert path.read_bytes() == before


def test_pls_optimize_status_refuses_it_without_a_traceback(recorded, tmp_path):
    path, _ = damaged_copy(recorded, tmp_path, PAGE + 8, b"\xa5" * 64)
    assert_refused(pls("optimize", "status", "--store", str(path)), "is damaged", "store.sqlite.damaged-",
                   "Move the damaged file away")
