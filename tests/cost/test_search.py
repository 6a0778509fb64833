import pytest

from est_analysis.cost import schedule_saving
from est_analysis.models import get_config
from est_analysis.schedule import Schedule
from est_analysis.cost.search import search_schedules

GPT2 = get_config("gpt2-124m")


def test_found_schedules_meet_target_and_constraints():
    table = search_schedules(GPT2, 150_000, target_saving=0.25, tolerance=0.005,
                             min_final_fraction=0.5, rate_values=(0.5, 1.0), grid=0.1)
    assert len(table) > 0
    assert (table["final_fraction"] >= 0.5 - 1e-9).all()
    for _, row in table.iterrows():
        schedule = Schedule(tuple(row["boundaries"]), tuple(row["rates"]))
        assert schedule_saving(GPT2, schedule, "paper") == pytest.approx(row["saving"])
        assert abs(row["saving"] - 0.25) <= 0.005
        for earlier, later in zip(schedule.rates, schedule.rates[1:]):
            assert earlier != later and all(a <= b for a, b in zip(earlier, later))
    distances = (table["saving"] - 0.25).abs()
    assert distances.is_monotonic_increasing


def test_budget_mode_ranks_by_cost():
    table = search_schedules(GPT2, 1000, budget=0.8, rate_values=(0.5, 1.0), grid=0.25,
                             stage_counts=(2,), min_final_fraction=0.25)
    assert (table["cost"] <= 0.8).all() and table["cost"].is_monotonic_increasing


def test_search_arguments_are_checked():
    with pytest.raises(ValueError, match="exactly one of"):
        search_schedules(GPT2, 100)
    with pytest.raises(ValueError, match="grid=0.3"):
        search_schedules(GPT2, 100, target_saving=0.2, grid=0.3)


def test_the_search_samples_only_the_components_asked_for():
    table = search_schedules(get_config("gpt2-regime"), 4332, target_saving=0.2, tolerance=0.05,
                             rate_values=(0.5, 1.0), accounting="full", top=50,
                             sampled=("heads", "layers"))
    assert len(table) > 5
    assert all(r[1] == 1.0 for rates in table["rates"] for r in rates)  # p_M stays 1
    assert any(r[0] < 1 for rates in table["rates"] for r in rates)
    assert any(r[2] < 1 for rates in table["rates"] for r in rates)
    with pytest.raises(ValueError, match="choose some of"):
        search_schedules(get_config("gpt2-regime"), 4332, target_saving=0.2, sampled=("mlp",))
