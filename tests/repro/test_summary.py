"""`est repro summary`: the README's tables come from the results CSVs, with differences checked
against scipy directly, and the README's generated blocks match the committed CSVs."""

from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as sps

from est_analysis.cli.main import main
from est_analysis.repro.summary import readme_block, summary_markdown

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL, EST = [3.00, 3.02, 3.01], [3.10, 3.05, 3.12]


def _rows(scale: str) -> pd.DataFrame:
    rows = [{"label": label, "seed": seed, "final_val_loss": loss, "flops_saving": saving}
            for label, losses, saving in (("Original", ORIGINAL, 0.0), ("EST", EST, 0.25),
                                          ("MSG", [3.2], 0.2))
            for seed, loss in enumerate(losses)]
    return pd.DataFrame(rows).assign(
        scale=scale, model="gpt2-test", params=1000, steps=500, tokens=300_000,
        tokens_per_param=300.0, passes=8.0, commit="abc1234", machine="test machine",
        torch="2.13.0", next_token_acc=0.3, ood_loss=7.0)


def test_summary_states_length_provenance_and_welch_differences(tmp_path, capsys):
    pd.concat([_rows("regime"), _rows("cpu").assign(final_val_loss=9.0)]).to_csv(
        tmp_path / "table2.csv", index=False)
    text = summary_markdown("regime", tmp_path)
    assert ("`gpt2-test` (1,000 parameters), 500 steps, 0.3 M tokens = 300 tokens per parameter, "
            "8 passes over the training split; trained at commit abc1234 on test machine") in text
    welch = sps.ttest_ind(EST, ORIGINAL, equal_var=False)
    ci = welch.confidence_interval(0.95)
    difference = sum(EST) / 3 - sum(ORIGINAL) / 3
    assert (f"| EST | 3 | {sum(EST) / 3:.4f} (3.100, 3.050, 3.120) | {difference:+.3f} "
            f"({ci.low:+.3f}..{ci.high:+.3f}, p {welch.pvalue:.2g}) | 25.0% |") in text
    assert "| MSG | 1 | 3.2000 (3.200) | +0.190 | 20.0% |" in text  # one seed: no interval
    assert "9.0" not in text and "Table 3" not in text  # other scales and absent tables left out
    assert main(["repro", "summary", "--scale", "regime", "--results-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == text


def test_ladder_rows_show_a_bound_as_a_bound(tmp_path):
    line = {"axis": "size", "model": "gpt2-d16", "params": 22368, "rung": 64.0, "passes": 1.7,
            "seeds": 2, "original_loss": 3.6, "est_loss": 3.7, "gap": 0.1, "gap_low": 0.0,
            "gap_high": 0.2, "gap_p": 0.05, "gap_matched": 0.02, "gap_matched_low": -0.1,
            "gap_matched_high": 0.14, "gap_matched_p": 0.3, "iso_loss_saving": -0.00001,
            "iso_loss_saving_low": 0.0, "iso_loss_saving_high": 0.0, "iso_loss_bound": "at most",
            "scale": "regime"}
    pd.DataFrame([line]).to_csv(tmp_path / "ladder_summary.csv", index=False)
    pd.DataFrame([{"axis": "size", "scale": "regime", "commit": "abc1234", "machine": "m",
                   "torch": "2"}]).to_csv(tmp_path / "ladder.csv", index=False)
    text = summary_markdown("regime", tmp_path)
    assert ("| `gpt2-d16` | 22,368 | 1.7 | 2 | 3.6000 | 3.7000 | +0.100 (+0.000..+0.200, p 0.05) | "
            "+0.020 (-0.100..+0.140, p 0.3) | at most +0.0% (bound) |") in text
    assert "length axis" not in text


@pytest.mark.parametrize("scale", ["cpu", "regime"])
def test_the_docs_show_the_committed_results(scale):
    block = readme_block(scale, ROOT / "paper_repro" / "results")
    assert block in (ROOT / "docs" / "reproduction.md").read_text(), (
        f"docs/reproduction.md's `{scale}` block is out of date: run `python scripts/update_readme.py`")


@pytest.mark.parametrize("kind", ["headline", "conclusions"])
def test_the_readme_findings_are_the_committed_results(kind):
    block = readme_block("regime", ROOT / "paper_repro" / "results", kind)
    assert block in (ROOT / "README.md").read_text(), (
        f"the README's {kind} are out of date: run `python scripts/update_readme.py`")
    assert "compute-matched Original" in block


def test_the_inactive_table_also_compares_each_treatment_with_dense(tmp_path):
    rows = _rows("regime").replace({"label": {"EST": "EST (dense)", "MSG": "EST (frozen)"}})
    rows.to_csv(tmp_path / "inactive.csv", index=False)
    text = summary_markdown("regime", tmp_path)
    assert "| minus Original (95 % CI, Welch p) | minus EST (dense) (95 % CI, Welch p) |" in text
    frozen_minus_dense = 3.2 - sum(EST) / 3
    assert f"| EST (frozen) | 1 | 3.2000 (3.200) | +0.190 | {frozen_minus_dense:+.3f} | 20.0% |" in text


@pytest.mark.parametrize("name", ["claims_cpu.md", "claims_regime.md"])
def test_the_docs_copy_the_committed_claims(name):
    claims = (ROOT / "paper_repro" / "results" / name).read_text()
    assert (f"<!-- copied from paper_repro/results/{name} by scripts/update_readme.py; do not "
            f"edit -->\n{claims}<!-- end of copy -->") in (ROOT / "docs" / "reproduction.md").read_text(), (
        f"docs/reproduction.md's copy of {name} is out of date: run `python scripts/update_readme.py`")
