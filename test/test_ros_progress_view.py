"""The launcher's views of a run (pls_ros.progress_view), fed real pls_interfaces messages."""

from __future__ import annotations

import io

from pls_interfaces.msg import EpisodeResult, SupervisorStatus, TargetReturn
from rich.console import Console

from pls_ros.progress_view import LineView, LiveView, make_view


def status(**fields):
    msg = SupervisorStatus(iteration=3, phase=SupervisorStatus.PHASE_SAFE_EXPLORATION, safe_set_size=140,
                           candidate_set_size=2460, best_reward_return=2210.0, best_cost_return=4.0,
                           threshold=20.0, episodes_at_current_target=2, episodes_per_evaluation=4)
    for key, value in fields.items():
        setattr(msg, key, value)
    return msg


def target():
    return TargetReturn(reward_return=2250.0, cost_return=6.0, iteration=3,
                        phase=TargetReturn.PHASE_SAFE_EXPLORATION, reward_lower=2100.0, reward_upper=2400.0,
                        cost_lower=1.5, cost_upper=19.5)


def episode(n, cost):
    return EpisodeResult(episode=n, reward_return=2200.0 + n, cost_return=cost, length=1000,
                         reason="time_limit", target_reward_return=2250.0, target_cost_return=6.0)


def test_the_live_view_shows_the_run_on_one_screen():
    screen = Console(file=io.StringIO(), force_terminal=True, width=120, record=True)
    view = LiveView("pls demo", max_episodes=12, console=screen)
    try:
        view.on_status(status())
        view.on_target(target())
        for n in range(8):  # more than it shows: the newest ones stay
            view.on_episode(episode(n, 25.0 if n == 7 else 3.0))
        view.say("pls", "a launcher line")
        text = Console(width=120, record=True, file=io.StringIO())
        text.print(view.render())
        shown = text.export_text()
    finally:
        view.close()
    assert "safe_exploration (iteration 3, 2/4 episodes at this target)" in shown
    assert "140 of 2460 targets verified safe (b = 20)" in shown
    assert "R = 2250.0, G = 6.0: reward in [2100, 2400], cost in [1.5, 19.5]" in shown
    assert "2207.0" in shown and "2201.0" not in shown  # the last LiveView.EPISODES_SHOWN episodes
    assert "8/12 episodes, 1 above b" in shown
    assert "[pls] a launcher line" in screen.export_text()  # scrolls above the screen


def test_the_line_view_prints_one_line_per_event_and_a_status_only_when_it_changes():
    out = io.StringIO()
    view = LineView(out)
    view.on_target(target())
    view.on_episode(episode(0, 3.0))
    view.on_status(status())
    view.on_status(status())  # unchanged: not repeated
    view.on_status(status(episodes_at_current_target=3))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[pls] target  #3 [safe_exploration] R=2250.00 G=6.00")
    assert lines[1].startswith("[pls] episode 0: reward 2200.00  cost 3.00  (1000 steps, time_limit)")
    assert [line.split("episodes ")[1].split()[0] for line in lines[2:]] == ["2/4", "3/4"]


def test_a_pipe_gets_lines_and_a_terminal_the_live_screen():
    assert isinstance(make_view("x", stream=io.StringIO()), LineView)
    live = make_view("x", live=True, stream=io.StringIO())
    try:
        assert isinstance(live, LiveView)
    finally:
        live.close()
