import pytest

from est_analysis.schedule import PRESETS, Schedule, parse_boundaries, parse_rates
from est_analysis.subnet import Rates


def test_paper_gpt2_schedule():
    s = Schedule.preset("est-gpt2")
    assert s.boundaries == (20_000, 70_000, 150_000)
    assert s.rates_at(0) == Rates(0.5, 0.5, 0.5) and s.rates_at(19_999) == Rates(0.5, 0.5, 0.5)
    assert s.rates_at(20_000) == Rates(0.5, 0.5, 1.0) and s.rates_at(69_999) == Rates(0.5, 0.5, 1.0)
    assert s.rates_at(70_000) == Rates(1, 1, 1) and s.rates_at(149_999) == Rates(1, 1, 1)
    assert s.stage_starts() == (0, 20_000, 70_000)


def test_presets_scale_to_short_runs():
    assert Schedule.preset("est-gpt2", 60).boundaries == (8, 28, 60)
    assert Schedule.preset("est-tinyllama", 600).boundaries == (100, 250, 600)
    assert Schedule.preset("est-two-stage-c", 150).boundaries == (90, 150)
    assert Schedule.preset("est-one-stage", 10).rates == (Rates(0.5, 0.5, 1.0),)
    assert Schedule.preset("est-three-stage").rates[1] == Rates(1.0, 1.0, 0.5)
    assert set(PRESETS) >= {"original", "est-gpt2", "est-tinyllama", "est-one-stage",
                            "est-two-stage-a", "est-two-stage-b", "est-two-stage-c",
                            "est-three-stage"}


@pytest.mark.parametrize("boundaries, rates, message", [
    ((10, 5, 20), [(1, 1, 1)] * 3, "strictly increasing"),
    ((0, 20), [(1, 1, 1)] * 2, "strictly increasing and positive"),
    ((10, 20), [(0.0, 1, 1), (1, 1, 1)], r"p_H=0.0 is outside \(0, 1\]"),
    ((10, 20), [(1, 1, 1.2), (1, 1, 1)], r"p_L=1.2 is outside"),
    ((10, 20), [(1, 1, 1)], "2 stage boundaries but 1 rate"),
])
def test_invalid_schedules_are_rejected(boundaries, rates, message):
    with pytest.raises(ValueError, match=message):
        Schedule(boundaries, rates)


def test_last_boundary_must_equal_total_steps():
    with pytest.raises(ValueError, match="must equal the total steps 100"):
        Schedule((10, 50), [(0.5, 0.5, 1), (1, 1, 1)]).check_total(100)
    with pytest.raises(ValueError, match="the last boundary fraction is 0.9"):
        Schedule.from_fractions([0.5, 0.9], [(0.5, 0.5, 1), (1, 1, 1)], 100)


def test_too_few_steps_for_a_preset_is_an_error():
    with pytest.raises(ValueError, match="too few"):
        Schedule.preset("est-gpt2", 3)
    with pytest.raises(ValueError, match="unknown schedule preset 'est-gtp2'"):
        Schedule.preset("est-gtp2", 100)


def test_custom_schedules_in_fractions_or_steps():
    boundaries, rates = parse_boundaries("0.2,0.5,1"), parse_rates(".5,.5,.5/.5,.5,1/1,1,1")
    assert Schedule.custom(boundaries, rates, 100).boundaries == (20, 50, 100)
    boundaries, rates = parse_boundaries("30,100"), parse_rates(".5,.5,1/1,1,1")
    assert Schedule.custom(boundaries, rates, 100).rates_at(30) == Rates(1, 1, 1)
    with pytest.raises(ValueError, match="must equal the total steps 120"):
        Schedule.custom(boundaries, rates, 120)
    with pytest.raises(ValueError, match="three numbers"):
        parse_rates(".5,.5")
    with pytest.raises(ValueError, match="cannot read stages"):
        parse_boundaries("a,b")


def test_too_few_steps_names_the_fewest_that_fit():
    fractions, rates = [2 / 15, 7 / 15, 1.0], [(0.5, 0.5, 0.5), (0.5, 0.5, 1), (1, 1, 1)]
    with pytest.raises(ValueError, match=r"at 2/15, 7/15, 1 of the run: they round to steps \[0, 1, 3\]; "
                                         r"use 4 steps or more"):
        Schedule.from_fractions(fractions, rates, 3)
    assert Schedule.from_fractions(fractions, rates, 4).boundaries == (1, 2, 4)
