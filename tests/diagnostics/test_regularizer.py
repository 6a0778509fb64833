"""The implicit regularizer R = E[L_subnet] - L_full (section 5.1): Monte Carlo estimate and the
dropout-theory second-order prediction, which must agree where the perturbation is small."""

import pytest

from est_analysis.diagnostics import regularizer_gap, regularizer_table, second_order_gap
from est_analysis.training import TrainConfig, load_run, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An EST run trained for 200 smoke steps: the second-order expansion describes a model
    near a minimum, which 60 steps do not reach (there the heads' curvature can be negative)."""
    out = tmp_path_factory.mktemp("est-200")
    train(TrainConfig(preset="est-gpt2", scale="smoke", steps=200), out, progress=False)
    run = load_run(out)
    return run.model, run.batches("val", 1)


@pytest.mark.parametrize("kind", ["neurons", "heads"])
def test_second_order_prediction_matches_monte_carlo(trained, kind):
    model, batches = trained
    rate = 0.75
    rates = (1, rate, 1) if kind == "neurons" else (rate, 1, 1)
    measured = regularizer_gap(model, batches, rates, samples=64)
    predicted = second_order_gap(model, batches, kind, rate, probes=24)
    assert measured.control_variate
    assert measured.ci_low > 0 and predicted.ci_low > 0
    # within 2.5 standard errors of the difference, and within 30 % of each other
    assert abs(predicted.prediction - measured.gap) < 2.5 * (measured.stderr ** 2 + predicted.stderr ** 2) ** 0.5
    assert predicted.prediction == pytest.approx(measured.gap, rel=0.3)


def test_control_variate_keeps_the_estimate_and_cuts_its_noise(trained):
    model, batches = trained
    with_cv = regularizer_gap(model, batches, (1, 0.75, 1), samples=32)
    plain = regularizer_gap(model, batches, (1, 0.75, 1), samples=32, control_variate=False)
    assert with_cv.control_variate and not plain.control_variate
    assert abs(with_cv.gap - plain.gap) < 2.5 * plain.stderr
    assert with_cv.stderr < 0.7 * plain.stderr
    assert not regularizer_gap(model, batches, (1, 0.5, 0.75), samples=2).control_variate  # layers


def test_full_rates_add_no_regularizer_and_estimates_are_seeded(trained):
    model, batches = trained
    assert regularizer_gap(model, batches, (1, 1, 1), samples=2).gap == 0.0
    assert second_order_gap(model, batches, "heads", 1.0, probes=2).prediction == 0.0
    first = regularizer_gap(model, batches, (0.5, 0.5, 1), samples=3, seed=7)
    assert regularizer_gap(model, batches, (0.5, 0.5, 1), samples=3, seed=7) == first
    assert regularizer_gap(model, batches, (0.5, 0.5, 1), samples=3, seed=8) != first


def test_several_batches_average_the_per_batch_predictions(est_run):
    run = load_run(est_run)
    first, second = run.batches("val", 2)
    both = second_order_gap(run.model, [first, second], "neurons", 0.5, probes=2).prediction
    apart = [second_order_gap(run.model, [b], "neurons", 0.5, probes=2).prediction for b in (first, second)]
    assert both == pytest.approx(sum(apart) / 2, rel=1e-6)


def test_table_sums_the_kinds_predictions_for_joint_sampling(trained):
    model, batches = trained
    table = regularizer_table(model, batches, [(0.5, 0.5, 1), (0.5, 0.5, 0.5)], samples=3, probes=2)
    assert list(table["sampled"]) == ["all", "heads", "neurons"] * 2
    joint, heads, neurons = table.iloc[0], table.iloc[1], table.iloc[2]
    assert joint["R_predicted"] == pytest.approx(heads["R_predicted"] + neurons["R_predicted"])
    assert table.iloc[3]["R_predicted"] != table.iloc[3]["R_predicted"]  # layers: no prediction (NaN)
    assert table.iloc[4]["R_mc"] == heads["R_mc"]  # same kind and rate: measured once


@pytest.mark.parametrize("call, message", [
    (lambda m, b: regularizer_gap(m, b, (0.3, 1, 1)), "p_H"),
    (lambda m, b: regularizer_gap(m, b, (1, 1, 1), samples=1), "at least 2"),
    (lambda m, b: second_order_gap(m, b, "layers", 0.5), "choose one of"),
])
def test_bad_arguments_are_named(trained, call, message):
    with pytest.raises(ValueError, match=message):
        call(*trained)
