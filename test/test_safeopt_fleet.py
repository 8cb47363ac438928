"""A fleet of N robots tuned by one optimizer (pls_core/safeopt/fleet.py), on synthetic problems with fixed
seeds: N = 1 is the single-robot optimizer decision by decision; every batch member is certified on the
real posterior when proposed (a fantasy narrows widths but certifies nothing); episodes are attributed to
their robot's target; a run killed mid-batch resumes exactly; and the rounds to reach one robot's final
regret on a small fixed set (benchmarks/bench_safeopt_fleet.py has the full study)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pls_core.safeopt import EpisodeRecord, StaleEpisodeError, StoreMismatchError, build_optimizer
from pls_core.safeopt.fleet import build_fleet, run_fleet
from pls_core.safeopt.records import Phase
from pls_core.safeopt.stress import sample_problem, stress_config
from pls_core.safeopt.synthetic import SyntheticProblem, run, synthetic_config

REPO = Path(__file__).resolve().parent.parent
ROUNDS = 30  # synthetic_config's stage caps: 20 + 10


def problem(seed: int, **overrides) -> SyntheticProblem:
    config = synthetic_config(seed=seed, **overrides)
    return SyntheticProblem.sample(config, seed)


@pytest.mark.parametrize("method", ["pls", "gp_ucb", "random"])
def test_a_fleet_of_one_is_the_single_robot_optimizer_decision_by_decision(method):
    p = problem(3, method=method)
    single = run(build_optimizer(p.config), p, ROUNDS)
    fleet = run_fleet(build_fleet(p.config, 1), p, ROUNDS)
    assert len(single) == ROUNDS + 1
    assert fleet == single  # every field of every Decision, bounds included


def certified_members(p, size: int, rounds: int) -> list[tuple]:
    """(member decision, real cost upper bound, real safe-set verdict) of every member when proposed."""
    seen = []

    def on_round(fleet):
        model = fleet.optimizer.model  # the real model: it does not change until the round's data are in
        for d in fleet.batch:
            i = model.grid.index_of(d.target)
            seen.append((d, float(model.cost_upper[i]), bool(model.safe[i])))

    run_fleet(build_fleet(p.config, size), p, rounds, on_round=on_round)
    return seen


@pytest.mark.parametrize("seed", [11, 12])
def test_every_batch_member_is_certified_on_the_real_posterior_when_proposed(seed):
    p = problem(seed)
    b = p.config.threshold
    members = certified_members(p, 4, 12)
    assert len(members) == 4 * 12
    for d, upper, safe in members:
        assert safe and upper <= b and d.verified_safe and d.cost_bounds[1] <= b, d
    stage_one = [d for d, _, _ in members if d.phase in (Phase.SEED, Phase.SAFE_EXPLORATION)]
    assert len(stage_one) <= p.config.max_exploration_iterations + 3  # stage 1 counts evaluations


def test_members_are_certified_under_the_kernel_robust_certificate_too():
    s = sample_problem("knee_r", 2)
    s.config = s.config.replace(seed=2)

    class Adapter:  # stress problems take a grid index and a time
        config, grid = s.config, s.grid

        @staticmethod
        def episode(target, rng, number):
            return s.episode(s.grid.index_of(target), 0, rng, number)

    for d, upper, safe in certified_members(Adapter, 4, 6):
        assert safe and upper <= s.config.threshold and d.verified_safe, d
    assert len(stress_config().cost_lengthscale_factors) == 4


def test_a_fantasy_narrows_the_widths_but_certifies_nothing():
    p = problem(12)
    optimizer = build_optimizer(p.config)
    run(optimizer, p, 3)
    model = optimizer.model
    pending = tuple(d.target for d in optimizer.history[-1:]) + ((50.0, 6.0),)
    fantasy = model.fantasised(pending)
    assert model.cost_gp.num_observations == 3  # the real model is untouched
    assert fantasy.num_observations == 3 and fantasy.alpha == model.alpha
    assert (fantasy.safe == model.safe).all() and fantasy.safe is not model.safe
    assert np.allclose(fantasy.cost_mean(), model.cost_mean())  # kriging believer: means unchanged
    assert (fantasy.cost_width() <= model.cost_width() + 1e-12).all()
    i = model.grid.index_of(pending[1])
    assert fantasy.cost_width()[i] < 0.8 * model.cost_width()[i]
    # Certifying on the fantasy would certify more than the data do: the real check is what matters.
    _, fantasy_upper = fantasy.cost_omega()
    assert ((fantasy_upper <= p.config.threshold) & ~model.safe).any()


def test_the_first_round_spreads_over_the_seed_box():
    p = problem(11)
    fleet = build_fleet(p.config, 4)
    targets = [d.target for d in fleet.batch]
    assert len(set(targets)) == 4
    assert all(fleet.optimizer.grid.seed_mask[fleet.optimizer.grid.index_of(t)] for t in targets)
    assert all(d.phase is Phase.SEED for d in fleet.batch)


def test_episodes_count_for_their_robots_target_in_any_order():
    p = problem(11)
    varpi = p.config.episodes_per_evaluation
    fleets = [build_fleet(p.config, 3), build_fleet(p.config, 3)]
    jobs = [(k, e) for e in range(varpi) for k in range(3)]
    orders = [jobs, sorted(jobs, key=lambda j: (-j[0], j[1]))]  # round robin, and robot by robot backwards
    for fleet, order in zip(fleets, orders, strict=True):
        batch = fleet.batch
        for k, e in order:
            rng = np.random.default_rng([k, e])
            result = fleet.report_episode(k, p.episode(batch[k].target, rng, 100 * k + e))
        assert result is not None and fleet.round == 1
        assert [t for t, _, _ in fleet.optimizer.evaluations] == [d.target for d in batch]
    assert fleets[0].batch == fleets[1].batch
    fleet = fleets[0]
    with pytest.raises(StaleEpisodeError):  # robot 1 ran robot 0's target
        fleet.report_episode(1, EpisodeRecord(fleet.batch[0].target, 1.0, 1.0, 10))
    for _ in range(varpi):
        fleet.report_episode(0, EpisodeRecord(fleet.batch[0].target, 1.0, 1.0, 10))
    with pytest.raises(StaleEpisodeError, match="waits for the other robots"):
        fleet.report_episode(0, EpisodeRecord(fleet.batch[0].target, 1.0, 1.0, 10))
    assert fleet.status()["episodes_at_targets"] == [varpi, 0, 0]


SEED, SIZE, KILL_ROUNDS = 7, 4, 8
CHILD = f"""
import json, sys, time
from pls_core.safeopt.fleet import build_fleet, run_fleet
from pls_core.safeopt.synthetic import SyntheticProblem, synthetic_config
config = synthetic_config(seed={SEED})
fleet = build_fleet(config, {SIZE}, sys.argv[1])
print("start", fleet.round, fleet.episodes_total, flush=True)
def slow(f):
    print("episode", f.episodes_total, flush=True)
    time.sleep(float(sys.argv[2]))
run_fleet(fleet, SyntheticProblem.sample(config, {SEED}), {KILL_ROUNDS}, on_episode=slow)
print(json.dumps([[d.iteration, d.phase.value, list(d.target), d.verified_safe] for d in fleet.history]))
"""


def child(store: Path, pause: float) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(store), str(pause)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_fleet_killed_mid_batch_resumes_with_the_decisions_of_an_uninterrupted_run(tmp_path):
    store = tmp_path / "fleet.sqlite"
    killed = child(store, 0.01)
    per_round = SIZE * synthetic_config().episodes_per_evaluation  # 20 episodes a round
    for line in killed.stdout:
        if line.startswith("episode") and int(line.split()[1]) >= 3 * per_round + 7:  # mid round 3
            break
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.read()

    resumed = child(store, 0.0)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    _, round_, episodes = out.splitlines()[0].split()
    assert int(round_) == 3 and int(episodes) % per_round != 0  # it resumed in the middle of a batch

    config = synthetic_config(seed=SEED)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference = run_fleet(build_fleet(config, SIZE), SyntheticProblem.sample(config, SEED), KILL_ROUNDS)
    finally:
        torch.set_num_threads(threads)
    expected = [[d.iteration, d.phase.value, list(d.target), d.verified_safe] for d in reference]
    assert json.loads(out.splitlines()[-1]) == expected
    assert len(expected) == SIZE * (KILL_ROUNDS + 1)

    with pytest.raises(StoreMismatchError, match="fleet of 4"):  # one robot may not resume a fleet's run
        build_optimizer(config, store)
    with pytest.raises(StoreMismatchError, match="fleet of 4"):
        build_fleet(config, 2, store)


def rounds_to(regret: list[float], target: float) -> int:
    return next((r for r, x in enumerate(regret, 1) if x <= target + 1e-12), len(regret) + 1)


def regret_by_round(p, size: int) -> tuple[list[float], int]:
    """Simple regret of the operation choice after each round, and the search episodes with cost > b."""
    unsafe = []
    original = p.episode

    def episode(target, rng, number):
        rec = original(target, rng, number)
        unsafe.append(rec.cost_return > p.config.threshold)
        return rec

    p.episode = episode
    try:
        history = run_fleet(build_fleet(p.config, size), p, ROUNDS)
    finally:
        del p.episode
    best = p.best_reachable_reward(0.2 * p.config.threshold)
    spread = float(np.ptp(p.reward))
    regret = []
    for r in range(1, ROUNDS + 1):
        i = p.index(history[r * size].best_target)
        regret.append((best - p.reward[i]) / spread if p.cost[i] <= p.config.threshold else np.inf)
    return regret, sum(unsafe)


@pytest.fixture(scope="module")
def four_vs_one() -> dict:
    """Seeds 200-207 (not the benchmark's): rounds to reach the N = 1 run's final simple regret, and the
    search episodes with cost > b per 400, for one robot and for four (measured: rounds 88 vs 44, ratio
    0.50; unsafe 1.67 vs 3.83 per 400 episodes)."""
    one, four, unsafe_one, unsafe_four = [], [], 0, 0
    for seed in range(200, 208):
        p = problem(seed)
        r1, u1 = regret_by_round(p, 1)
        r4, u4 = regret_by_round(p, 4)
        one.append(rounds_to(r1, r1[-1]))
        four.append(rounds_to(r4, r1[-1]))
        unsafe_one, unsafe_four = unsafe_one + u1, unsafe_four + u4
    result = {"one": one, "four": four, "ratio": sum(four) / sum(one),
              "unsafe_one": 400 * unsafe_one / (8 * ROUNDS * 5),
              "unsafe_four": 400 * unsafe_four / (8 * ROUNDS * 20)}
    print(f"\n{result}")
    return result


def test_four_robots_reach_one_robots_final_regret_in_about_half_the_rounds(four_vs_one):
    """A guard at what the design gives (a batch of four copies of one robot's pick would need about as
    many rounds as one robot); the issue's targets are the strict xfail below."""
    assert four_vs_one["ratio"] <= 0.55
    assert all(k <= ROUNDS for k in four_vs_one["four"])  # every run reaches it
    assert four_vs_one["unsafe_four"] <= 2.5 * four_vs_one["unsafe_one"]


@pytest.mark.xfail(strict=True, reason="issue 34's fleet target is not met (docs/method.md, 'A fleet of "
                   "robots'): the depth of safe expansion bounds the rounds, and more data certify targets "
                   "nearer b, whose episodes exceed b more often")
def test_issue_34_target_rounds_at_most_035_and_unsafe_episodes_not_above_one_robots(four_vs_one):
    assert four_vs_one["ratio"] <= 0.35 and four_vs_one["unsafe_four"] <= four_vs_one["unsafe_one"]
