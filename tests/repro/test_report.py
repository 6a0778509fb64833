"""What the notebooks read: the runner's rows and the loss histories of their runs."""

import pandas as pd

from est_analysis.repro.report import loss_histories, measured


def test_loss_histories_read_every_seed_and_name_the_runs_not_on_this_machine(smoke_repro, tmp_path):
    runs, results = smoke_repro
    rows = measured("table2", "smoke", results, runs)
    histories, missing = loss_histories(rows)
    assert list(histories) == list(dict.fromkeys(rows["label"])) and missing == []
    assert all(isinstance(h, pd.DataFrame) and "val_loss" in h for hs in histories.values() for h in hs)

    gone = tmp_path / "not-here"
    rows.loc[rows.label == "MSG", "run_dir"] = str(gone)  # a clone has the CSV but not the runs
    histories, missing = loss_histories(rows)
    assert "MSG" not in histories and missing == [gone]
