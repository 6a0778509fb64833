"""The main job's figure (`est quickstart`): validation loss against training FLOPs for the
three arms with EST's stages shaded, and the Hessian trace of each final model with its CI."""

from __future__ import annotations

import pandas as pd
from matplotlib import pyplot as plt

from est_analysis.plotting.curves import draw_loss_curves
from est_analysis.plotting.style import color_for, new_figure


def quickstart_figure(runs: dict[str, pd.DataFrame], table: pd.DataFrame) -> plt.Figure:
    """`runs`: arm -> metrics; `table`: `verdict_table`'s rows (arm, trace, its CI)."""
    fig, (loss, trace) = new_figure(2, width=5.0)
    draw_loss_curves(loss, runs, x="flops", y="val", stages_of="EST")
    loss.set_title("validation loss against training FLOPs", fontsize=9, pad=18)
    x = range(len(table))
    trace.bar(x, table["trace"], yerr=[table["trace"] - table["trace_ci_low"],
                                       table["trace_ci_high"] - table["trace"]],
              capsize=3, color=[color_for(a) for a in table["arm"]])
    trace.set_xticks(list(x), [a.replace(" at ", "\nat ") for a in table["arm"]], fontsize=7)
    trace.set_ylabel("Tr(H) of the final model (95 % CI)")
    trace.set_title("Hessian trace (Hutch++, 2 training batches)", fontsize=9, pad=18)
    return fig
