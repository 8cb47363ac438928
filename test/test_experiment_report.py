"""The report's arithmetic: best safe sweep target inside a candidate grid, and per-method aggregation."""

from __future__ import annotations

import pytest

from pls_core.evaluate import TargetSummary
from pls_core.experiment.paper import paper_numbers
from pls_core.experiment.report import aggregate
from pls_core.experiment.sweep import best_safe


def cell(reward_target, cost_target, reward, cost, b=20.0) -> TargetSummary:
    return TargetSummary(reward_target, cost_target, 2, reward, 0.0, cost, 0.0, reward / 1000.0, cost / b)


def test_best_safe_is_the_highest_reward_with_cost_at_most_b_inside_the_grid():
    cells = [cell(2000, 10, 900, 5), cell(2000, 30, 950, 20), cell(2500, 30, 990, 25), cell(2500, 80, 999, 3)]
    assert best_safe(cells, (2000, 2500), (0, 40)) == cells[1]  # cost 25 > b, G = 80 outside the grid
    assert best_safe(cells, (2000, 2500), (0, 80)) == cells[3]
    assert best_safe(cells, (2000, 2500), (0, 5)) is None


def run(method, seed, reward, cost, unsafe, regret):
    return {"task": "T", "threshold": 20.0, "method": method, "seed": seed, "final_reward": reward,
            "final_cost": cost, "final_safe": cost <= 1.0, "search_episodes": 40, "unsafe_episodes": unsafe,
            "regret": regret, "wall_time_s": 1.0}


def test_aggregate_gives_mean_and_sample_std_over_seeds_per_method():
    rows = [run("pls", 0, 0.8, 0.5, 1, 0.1), run("pls", 1, 0.6, 1.5, 3, None),
            run("fixed", 0, 0.9, 2.0, 40, 0.0)]
    pls, fixed = aggregate(rows)
    assert (pls["method"], pls["runs"], fixed["runs"]) == ("pls", 2, 1)
    assert pls["final_reward_mean"] == pytest.approx(0.7)
    assert pls["final_reward_std"] == pytest.approx(0.1414213562)  # ddof 1
    assert pls["final_safe_runs"] == 1 and pls["unsafe_episodes_total"] == 4
    assert pls["unsafe_episodes_mean"] == pytest.approx(2.0)
    assert (pls["regret_mean"], pls["regret_std"]) == (pytest.approx(0.1), 0.0)  # a missing regret is skipped
    assert fixed["final_cost_std"] == 0.0  # one seed


def test_paper_numbers_are_tables_1_7_and_8():
    assert paper_numbers("SafetyHalfCheetahVelocity-v1", 20, "pls") == ("0.99±0.00", "0.15±0.19", "1±1")
    assert paper_numbers("SafetyHopperVelocity-v1", 40.0, "fixed") == ("0.67±0.03", "0.56±0.56", "—")
    assert paper_numbers("SafetyHalfCheetahVelocity-v1", 20, "gp_ucb") == ("—", "—", "—")


def test_a_halted_run_has_no_final_score_counts_as_safe_and_is_counted():
    from pls_core.experiment.loop import RunKey, RunRecord
    from pls_core.experiment.report import run_row

    final = {"target": [900.0, 5.0], "phase": "halted", "rule": "halted", "halted": True, "note": "refuted",
             "halted_after": 3, "reward_mean": None, "cost_mean": None, "unsafe": 0, "episodes": []}
    episodes = [{"unsafe": True}] * 6
    record = RunRecord(RunKey("T", 20.0, "pls", 0), {}, [{}] * 3, episodes, final, 1.0)
    halted = run_row(record, (0.0, 1000.0), best_safe([cell(2000, 10, 900, 5)], (2000, 2000), (0, 40)))
    assert halted["halted"] and halted["final_safe"] and halted["unsafe_episodes"] == 6
    assert halted["final_reward"] is None and halted["final_cost"] is None and halted["regret"] is None
    (entry,) = aggregate([halted, {**run("pls", 1, 0.8, 0.5, 1, 0.1), "halted": False}])
    assert entry["halted_runs"] == 1 and entry["final_safe_runs"] == 2
    assert entry["final_reward_mean"] == pytest.approx(0.8)  # the halted run has no reward to average


def test_compare_to_fixed_is_welchs_test_on_the_final_rewards():
    from pls_core.experiment.report import _comparison_line, compare_to_fixed

    def rows(method, rewards, b=20.0):
        return [{**run(method, seed, r, 0.5, 0, 0.0), "threshold": b} for seed, r in enumerate(rewards)]

    fixed = [0.27, 0.28, 0.26, 0.27, 0.28]
    noisy = [0.22, 0.27, 0.24, 0.28, 0.25]  # 0.02 below, spread 0.024
    tight = [0.20, 0.21, 0.20, 0.21, 0.20]  # 0.07 below, spread 0.005
    halted = {**run("pls", 9, 0.9, 0.5, 0, 0.0), "final_reward": None}
    table = compare_to_fixed(rows("fixed", fixed) + rows("pls", noisy) + [halted] + rows("gp_ucb", tight)
                             + rows("fixed", fixed, 40.0) + rows("pls", [0.3, 0.31], 40.0)
                             + rows("random", [0.1], 40.0))
    by = {(c["method"], c["threshold"]): c for c in table}
    assert set(by) == {("pls", 20.0), ("gp_ucb", 20.0), ("pls", 40.0), ("random", 40.0)}
    level = by[("pls", 20.0)]
    m1, m2 = sum(noisy) / 5, sum(fixed) / 5  # Welch's t by hand; the halted run is left out
    v1 = sum((x - m1) ** 2 for x in noisy) / 4 / 5
    v2 = sum((x - m2) ** 2 for x in fixed) / 4 / 5
    assert level["runs"] == 5 and level["reward_minus_fixed"] == pytest.approx(m1 - m2)
    assert level["welch_t"] == pytest.approx((m1 - m2) / (v1 + v2) ** 0.5)
    assert 0.05 <= level["p"] < 0.2 and level["verdict"] == "level"
    assert by[("gp_ucb", 20.0)]["verdict"] == "below" and by[("gp_ucb", 20.0)]["p"] < 1e-4
    assert by[("pls", 40.0)]["verdict"] == "above"
    assert by[("random", 40.0)]["verdict"] is None  # one run: no test
    assert "within noise" in _comparison_line(level)
    assert "beyond noise" in _comparison_line(by[("gp_ucb", 20.0)])
    assert "too few runs" in _comparison_line(by[("random", 40.0)])


def test_dsrl_scale_uses_dsrl_constants_and_says_na_without_them():
    from pls_core.normalise import dsrl_normalised_reward, fmt_score

    # The paper's PLS at b = 20 on HalfCheetah is 0.99 on DSRL's scale: about 2780 raw (pls-method.md).
    assert dsrl_normalised_reward(2780.0, "SafetyHalfCheetahVelocity-v1") == pytest.approx(0.99, abs=0.005)
    assert dsrl_normalised_reward(37.0515, "SafetyHopperVelocity-v1") == pytest.approx(0.0)
    assert dsrl_normalised_reward(1911.3967, "SafetyHopperVelocity-v1") == pytest.approx(1.0)
    assert dsrl_normalised_reward(10.0, "SafetyPointGoal1-v0") is None
    assert (fmt_score(None), fmt_score(0.8312)) == ("n/a", "0.83")


def results_for(task: str) -> dict:
    """A results.json dict as write_report makes it, for one task, b = 20, PLS and fixed, two seeds each."""
    rows = [{**run(method, seed, reward, 0.5, 1, 0.01), "task": task, "halted": False,
             "final_reward_dsrl": None if task == "T" else reward + 0.1}
            for method, rewards in (("pls", (0.80, 0.82)), ("fixed", (0.78, 0.79)))
            for seed, reward in enumerate(rewards)]
    from pls_core.experiment.report import compare_to_fixed

    return {"settings": {"iterations": 2, "episodes_per_evaluation": 2, "seeds": 2},
            "provenance": {"command": "pls experiment --out x", "commit": "abc123",
                           "machine": {"cpu": "Some CPU", "avx512": False, "cores": 2},
                           "date": "2026-12-06 00:00 UTC"},
            "tasks": {task: {"model": "m.onnx", "model_sha256": "0" * 64, "reward_range": [0.0, 1000.0],
                             "statistics_source": "model contract", "seed_reward_range": [500.0, 600.0],
                             "sweep_targets": 4, "sweep_episodes_per_target": 1,
                             "sweep_best_safe": {"20": {"target": [900.0, 10.0], "reward": 0.81, "cost": 0.5,
                                                        "reward_dsrl": None if task == "T" else 0.91}}}},
            "summary": aggregate(rows), "against_fixed": compare_to_fixed(rows), "runs": rows}


def test_the_table_shows_both_reward_scales_and_the_papers_on_dsrls():
    from pls_core.experiment.report import markdown

    hopper = markdown(results_for("SafetyHopperVelocity-v1"))
    assert "| reward (ours) | reward (DSRL) |" in hopper and "| paper reward (DSRL) |" in hopper
    assert "| 20 | pls | 2 | 0 | 0.81±0.01 | 0.91±0.01 |" in hopper
    assert "| 0.83±0.01 | 0.42±0.10 | 2±2 |" in hopper  # Table 1's Hopper PLS row, beside ours
    assert "reward 0.81 (DSRL 0.91)" in hopper and "DSRL's [37.1, 1911.4]" in hopper
    assert "machine: Some CPU, 2 logical cores, no AVX-512" in hopper
    unknown = markdown(results_for("T"))
    assert "| 20 | pls | 2 | 0 | 0.81±0.01 | n/a |" in unknown and "(DSRL n/a)" in unknown


def test_the_results_document_is_rendered_from_the_result_files_alone(tmp_path):
    import json

    from pls_core.experiment.report import results_document, write_results_document

    results = tmp_path / "docs" / "results"
    for name, task in (("b_hopper", "SafetyHopperVelocity-v1"), ("a_other", "T")):
        (results / name / "figures").mkdir(parents=True)
        (results / name / "results.json").write_text(json.dumps(results_for(task)))
        (results / name / "figures" / "curves.png").write_bytes(b"png")
    old = {k: v for k, v in results_for("T").items() if k != "provenance"}  # made before it was recorded
    (results / "c_old").mkdir()
    (results / "c_old" / "results.json").write_text(json.dumps(old))
    (results / "legacy.md").write_text("## Legacy\n\nhand-copied\n")
    doc = write_results_document(tmp_path / "docs" / "results.md")
    text = doc.read_text()
    order = [text.index(f"## {name}") for name in ("a_other", "b_hopper", "c_old", "Legacy")]
    assert order == sorted(order)
    assert text.count("commit: abc123") == 2 and text.count("- command: not recorded") == 1
    assert "![curves](results/a_other/figures/curves.png)" in text
    assert "command: `pls experiment --out x`" in text and "commit: abc123" in text
    assert results_document(doc) == text  # regenerating changes nothing
    (results / "legacy.md").unlink()
    assert "hand-copied" not in results_document(doc)
    single = results / "b_hopper"  # one experiment's own --out folder
    assert "## b_hopper" in results_document(tmp_path / "one.md", single)


def test_docs_results_md_is_what_pls_experiment_report_regenerates():
    """The committed document is byte-identical to a regeneration from the files committed beside it."""
    from pathlib import Path

    from pls_core.experiment.report import results_document

    doc = Path(__file__).resolve().parents[1] / "docs" / "results.md"
    assert doc.read_text() == results_document(doc), (
        "docs/results.md differs from its result files: run `pls experiment --out docs/results --report "
        "docs/results.md` and commit the result")
