"""`pls optimize demo | plot | status` and the figures drawn from a recorded run."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from pls_core.cli import app
from pls_core.safeopt.plots import replay_store
from pls_core.safeopt.store import OptimizerStore

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_demo_records_a_safe_run_and_draws_it(tmp_path):
    store, figures = tmp_path / "demo.sqlite", tmp_path / "figures"
    runner = CliRunner()
    result = runner.invoke(app, ["optimize", "demo", "--seed", "2", "--evaluations", "6",
                                 "--store", str(store), "--out", str(figures), "--every", "3"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):result.output.rindex("}") + 1])
    assert summary["unsafe_proposals"] == 0 and summary["evaluations"] == 6
    names = sorted(p.name for p in figures.iterdir())
    assert names == ["iteration_000.png", "iteration_003.png", "iteration_006.png", "progress.png",
                     "targets.png"]
    assert all((figures / n).read_bytes().startswith(PNG_MAGIC) for n in names)

    status = runner.invoke(app, ["optimize", "status", "--store", str(store)])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["iteration"] == 6

    again = runner.invoke(app, ["optimize", "plot", "--store", str(store), "--out", str(tmp_path / "again"),
                                "--every", "100"])
    assert again.exit_code == 0, again.output
    assert {line.rsplit("/", 1)[-1] for line in again.output.split()} == \
        {"iteration_000.png", "iteration_006.png", "progress.png", "targets.png"}


def test_replay_snapshots_match_the_recorded_decisions(tmp_path):
    store = tmp_path / "demo.sqlite"
    result = CliRunner().invoke(app, ["optimize", "demo", "--evaluations", "4", "--store", str(store)])
    assert result.exit_code == 0, result.output
    optimizer, snapshots = replay_store(store)
    recorded = OptimizerStore(store).decisions()
    assert [s.decision for s in snapshots] == recorded == optimizer.history
    assert [int(s.safe.sum()) for s in snapshots] == [d.safe_set_size for d in recorded]
    assert snapshots[0].safe.shape == optimizer.grid.shape


def test_demo_out_without_store_is_refused(tmp_path):
    result = CliRunner().invoke(app, ["optimize", "demo", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "--out needs --store" in result.output
