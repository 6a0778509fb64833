"""The plotting library: every function returns a Figure from data, `save` writes PNG and PDF,
and `est plot` turns run directories into figures."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from est_analysis import plotting
from est_analysis.cli.main import main


def _metrics(seed: int, stages=(1, 2, 3)) -> pd.DataFrame:
    steps = np.arange(30)
    rng = np.random.default_rng(seed)
    loss = 6 * np.exp(-steps / 20) + 3 + 0.05 * rng.standard_normal(30)
    stage = np.repeat(stages, 30 // len(stages))
    rates = {1: (0.5, 0.5, 0.5), 2: (0.5, 0.5, 1.0), 3: (1.0, 1.0, 1.0)}
    return pd.DataFrame({
        "step": steps, "stage": stage, "p_H": [rates[s][0] for s in stage],
        "p_M": [rates[s][1] for s in stage], "p_L": [rates[s][2] for s in stage],
        "tokens": (steps + 1) * 512, "cum_flops": (steps + 1) * 1e9, "wall_s": (steps + 1) * 0.1,
        "train_loss": loss, "val_loss": np.where(steps % 10 == 9, loss + 0.1, np.nan)})


def test_loss_curves_band_seeds_and_label_stages():
    runs = {"est": [_metrics(0), _metrics(1)], "original": _metrics(2, stages=(1,))}
    for x in ("step", "tokens", "flops", "wall"):
        figure = plotting.loss_curves(runs, x=x, y="train")
        assert isinstance(figure, Figure)
        ax = figure.axes[0]
        assert any(isinstance(c, PolyCollection) for c in ax.collections)  # the seed band
        assert {"est (mean of 2 seeds)", "original"} <= {t.get_text() for t in ax.get_legend().get_texts()}
        assert any("stage 3" in t.get_text() for t in ax.texts)
    with pytest.raises(ValueError, match="x is one of"):
        plotting.loss_curves(runs, x="epoch")


def test_curves_that_overlap_keep_distinct_line_styles():
    # Original and Original at EST's FLOPs share a colour family and lie on each other
    runs = {"Original": _metrics(0, stages=(1,)), "EST": _metrics(1),
            "Original at EST's FLOPs": _metrics(0, stages=(1,))}
    lines = [line for line in plotting.loss_curves(runs, x="flops", y="val").axes[0].get_lines()
             if line.get_label() in runs]
    assert len(lines) == 3
    styles = {(line.get_linestyle(), line.get_marker(), line.get_markerfacecolor()) for line in lines}
    assert len(styles) == 3


def test_one_colour_per_method_whatever_the_figure_panel_or_order():
    ours = pd.DataFrame({"label": ["EST-ONE-STAGE", "EST-TWO-STAGE-C", "EST", "Original"],
                         "flops_saving": [0.36, 0.22, 0.19, 0.0],
                         "final_val_loss": [5.4, 5.3, 5.3, 5.0]})
    paper = pd.DataFrame({"label": ["EST", "Original", "EST-TWO-STAGE-C", "EST-ONE-STAGE"],
                          "flops_saving": [0.267, 0.0, 0.3, 0.5], "val_loss": [2.9, 2.9, 3.0, 3.1]})
    figure = plotting.saving_vs_loss(ours, paper)
    panels = []
    for ax in figure.axes:
        handles, labels = ax.get_legend_handles_labels()
        panels.append({label: (h.lines[0] if hasattr(h, "lines") else h).get_color()
                       for h, label in zip(handles, labels)})
    assert panels[0] == panels[1]
    assert len(set(panels[0].values())) == 4  # EST and EST-ONE-STAGE differ
    assert plotting.color_for("Staged Training") == plotting.color_for("staged")
    assert plotting.color_for("est (mean of 3 seeds)") == plotting.color_for("EST")
    assert plotting.color_for("run_a") == plotting.color_for("run_a")  # by name, not position


def test_every_figure_function_draws_its_table(tmp_path):
    regularizer = pd.DataFrame({
        "rates": ["0.5,0.5,1"] * 4, "sampled": ["all", "heads"] * 2, "step": [0, 0, 10, 10],
        "R_mc": [0.1, 0.05, 0.2, 0.1], "R_mc_stderr": 0.01, "R_mc_ci_low": [0.08, 0.03, 0.18, 0.08],
        "R_mc_ci_high": [0.12, 0.07, 0.22, 0.12], "R_predicted": [0.09, 0.04, 0.21, 0.1],
        "R_predicted_stderr": 0.01})
    transitions = pd.DataFrame({"boundary": [8, 28], "rates_before": ["a", "b"],
                                "rates_after": ["b", "c"], "observed_drop": [0.1, 0.2],
                                "observed_drop_stderr": 0.01, "delta_R": [0.05, 0.1],
                                "delta_R_stderr": 0.01})
    slopes = pd.DataFrame({"run": ["original", "original", "est", "est"],
                           "loss_level": [4.0, 3.5] * 2, "slope": [0.1, 0.05, 0.2, 0.1],
                           "ci_low": [0.05, 0.0, 0.15, 0.05], "ci_high": [0.15, 0.1, 0.25, 0.15]})
    traces = pd.DataFrame({"step": [0, 10], "trace": [10.0, 20.0], "ci_low": [8.0, 15.0],
                           "ci_high": [12.0, 25.0], "block:attn": [4.0, 5.0], "block:mlp": [6.0, 15.0]})
    line = pd.DataFrame({"alpha": [-1.0, 0.0, 1.0], "loss": [2.0, 1.0, 2.0]})
    plane = pd.DataFrame([{"alpha": a, "beta": b, "loss": 1 + a * a + b * b}
                          for a in (-1, 0, 1) for b in (-1, 0, 1)])
    figures = [plotting.regularizer_trajectory(regularizer), plotting.regularizer_prediction(regularizer),
               plotting.transition_drops(transitions), plotting.slopes_vs_loss(slopes),
               plotting.trace_bars(traces), plotting.landscape_1d({"est": line}),
               plotting.landscape_2d(plane), plotting.trace_trajectories({"est": traces})]
    assert all(isinstance(f, Figure) for f in figures)
    assert len(figures[4].axes) == 2  # per-block shares beside the totals
    written = plotting.save(figures[0], tmp_path / "sub" / "r.png")
    assert [p.name for p in written] == ["r.png", "r.pdf"]
    assert all(p.stat().st_size > 0 for p in written)


def test_est_plot_renders_a_run_directory(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--steps", "12", "--out", str(run), "--no-progress"]) == 0
    (run / "diagnostics").mkdir()
    pd.DataFrame({"alpha": [-1.0, 0.0, 1.0], "loss": [2.0, 1.0, 2.0]}).to_csv(
        run / "diagnostics" / "slice_1d.csv", index=False)
    capsys.readouterr()
    assert main(["plot", str(run), "--x", "step,wall"]) == 0
    names = sorted(p.name for p in (run / "figures").iterdir())
    assert "loss_val_vs_wall.pdf" in names and "run_slice_1d.png" in names
    assert main(["plot", str(run), "--x", "epoch"]) == 2
    assert "unknown axis 'epoch'" in capsys.readouterr().err


def _overlapping_x_labels(fig: Figure) -> list[tuple[str, str]]:
    """Pairs of neighbouring x tick labels whose drawn boxes overlap, on every panel."""
    fig.canvas.draw()
    pairs = []
    for ax in fig.axes:
        labels = [label for label in ax.get_xticklabels() if label.get_text()]
        boxes = [label.get_window_extent() for label in labels]
        pairs += [(a.get_text(), b.get_text()) for a, b, box_a, box_b in
                  zip(labels, labels[1:], boxes, boxes[1:]) if box_a.overlaps(box_b)]
    return pairs


def test_tick_labels_of_many_long_runs_do_not_overlap_and_methods_are_named():
    traces = pd.DataFrame({"run": [f"{m} seed {s}" for m in ("Original", "EST") for s in range(3)],
                           "trace": [12800.0, 14200, 13200, 12700, 10300, 11800],
                           "ci_low": 10000.0, "ci_high": 15000.0})
    figure = plotting.trace_bars(traces)
    assert _overlapping_x_labels(figure) == []
    colours = {bar.get_facecolor() for bar in figure.axes[0].patches[:3]}
    assert len(colours) == 1  # the seeds of a method share its colour, and the legend names it
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == ["Original", "EST"]
    transitions = pd.DataFrame({"boundary": [2707, 9476] * 3, "seed": [0, 0, 1, 1, 2, 2],
                                "rates_before": ["(0.5, 0.5, 0.5)", "(0.5, 0.5, 1.0)"] * 3,
                                "rates_after": ["(0.5, 0.5, 1.0)", "(1.0, 1.0, 1.0)"] * 3,
                                "observed_drop": 0.1, "observed_drop_stderr": 0.05,
                                "delta_R": 0.05, "delta_R_stderr": 0.01})
    figure = plotting.transition_drops(transitions)
    assert _overlapping_x_labels(figure) == []
    labels = [t.get_text().replace("\n", " ") for t in figure.axes[0].get_xticklabels()]
    assert "step 2707, seed 1 (.5,.5,.5) -> (.5,.5,1)" in labels


def test_the_stage_bands_of_a_multi_method_figure_say_whose_they_are():
    def metrics(stages):
        return pd.DataFrame({"step": range(6), "stage": stages, "p_H": 0.5, "p_M": 0.5, "p_L": 1.0,
                             "train_loss": [5, 4, 3.5, 3, 2.8, 2.7], "val_loss": [5, 4, 3.5, 3, 2.8, 2.7],
                             "tokens": range(6), "cum_flops": range(6), "wall_s": range(6)})
    figure = plotting.loss_curves({"Original": metrics([1] * 6), "EST": metrics([1, 1, 2, 2, 3, 3])})
    texts = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert texts == ["Original", "EST", "stages of EST"]


def test_the_studies_figure_draws_each_study_and_says_which_are_missing():
    cells = pd.DataFrame({"axis": ["length", "length", "width"], "model": ["a", "a", "b"],
                          "steps": [100, 400, 400], "diff": [0.1, 0.05, 0.2],
                          "diff_low": [0.0, 0.01, np.nan], "diff_high": [0.2, 0.09, np.nan]})
    curves = pd.DataFrame({"group": "slice", "arm": ["Original"] * 4 + ["EST"] * 4,
                           "seed": [0, 0, 1, 1] * 2, "step": [0, 10] * 4,
                           "val_loss": [5.0, 4.0, 5.1, 4.2, 5.0, 3.9, 5.2, 3.8]})
    screen = pd.DataFrame({"group": ["s1", "s2"], "flops_saving": [0.2, 0.15], "diff": [0.01, -0.02],
                           "diff_low": [np.nan, np.nan], "diff_high": [np.nan, np.nan]})
    fig = plotting.studies_figure(cells, None, None, curves, pd.DataFrame(), None, screen)
    gaps, ablation, control, lr, instability, schedules = fig.axes
    assert [t.get_text() for t in instability.texts] == ["not measured yet"]
    points = [l for l in schedules.get_lines() if l.get_markerfacecolor() == "white"]
    assert list(points[0].get_xdata()) == [0.2, 0.15] and list(points[0].get_ydata()) == [0.01, -0.02]
    assert [t.get_text() for t in gaps.get_legend().get_texts()] == ["a", "b"]
    hollow = [l for l in gaps.get_lines() if l.get_markerfacecolor() == "white"]
    assert len(hollow) == 2 and list(hollow[1].get_xdata()) == [400]  # b: one seed, no interval
    assert [t.get_text() for t in ablation.texts] == ["not measured yet"]
    assert [t.get_text() for t in lr.texts] == ["not measured yet"]
    original = next(l for l in control.get_lines() if l.get_label().startswith("Original"))
    assert list(original.get_ydata()) == [5.05, 4.1]  # the mean over seeds per step
