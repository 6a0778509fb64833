"""`est export`: a trained run loads in HF transformers offline, with our logits, our
tokenizer's ids and identical weights when read back; the analysis commands take the
directory as a run."""

import json

import pytest
import torch

from est_analysis.cli.main import main
from est_analysis.data import load_tokenizer
from est_analysis.training import TrainConfig, load_run, train

transformers = pytest.importorskip("transformers")
TEXT = "Shall I compare thee to a summer's day?\n  Thou art more lovely"
# HF's LlamaTokenizer, built from a tokenizer.model, splits runs of spaces differently from
# SentencePiece itself (README, "HF export"): the Llama case compares text without them
PLAIN = "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate"


@pytest.mark.parametrize("preset", ["est-gpt2", "est-tinyllama"])
def test_exported_run_loads_in_transformers_with_our_logits(preset, sentencepiece_model, tmp_path,
                                                            monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = str(sentencepiece_model) if preset == "est-tinyllama" else None  # Llama: SentencePiece
    run = train(TrainConfig(scale="smoke", steps=6, eval_every=3, preset=preset,
                            tokenizer=tokenizer), tmp_path / "run", progress=False)
    assert main(["export", str(run), "--to", str(tmp_path / "hf")]) == 0
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert type(hf).__name__ == {"est-gpt2": "GPT2LMHeadModel", "est-tinyllama": "LlamaForCausalLM"}[preset]
    ours = load_run(run).model.eval()
    idx = torch.randint(0, ours.config.vocab_size, (2, ours.config.block_size))
    with torch.no_grad():
        assert (hf(idx).logits - ours(idx)).abs().max().item() < 1e-4
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    run_tokenizer = load_run(run).data.tokenizer
    text = PLAIN if preset == "est-tinyllama" else TEXT
    expected = run_tokenizer.encode_batch([text], add_special_tokens=False)[0].ids
    assert hf_tokenizer(text, add_special_tokens=False).input_ids == expected
    assert hf.config.eos_token_id == hf_tokenizer.eos_token_id
    reread = load_run(tmp_path / "hf").model
    for key, value in ours.state_dict().items():
        assert torch.equal(reread.state_dict()[key], value), key
    assert json.loads((tmp_path / "hf" / "est_export.json").read_text())["step"] == 6
    assert load_tokenizer(tmp_path / "hf").get_vocab_size() == run_tokenizer.get_vocab_size()


def test_analysis_commands_take_an_hf_directory(tmp_path, capsys):
    run = train(TrainConfig(scale="smoke", steps=4, eval_every=2), tmp_path / "run", progress=False)
    assert main(["export", str(run), "--to", str(tmp_path / "hf")]) == 0
    capsys.readouterr()
    assert main(["hessian", "trace", str(tmp_path / "hf"), "--probes", "6", "--batches", "1",
                 "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["trace"] > 0
    assert main(["export", str(run), "--to", str(tmp_path / "hf")]) == 2  # not empty: refused
    # without est export's record it is a model trained elsewhere: no invented step, and the
    # report says which corpus and tokenizer the batches came from
    (tmp_path / "hf" / "est_export.json").unlink()
    capsys.readouterr()
    assert main(["hessian", "trace", str(tmp_path / "hf"), "--probes", "6", "--batches", "1",
                 "--no-progress"]) == 0
    head, line = capsys.readouterr().out.splitlines()[:2]
    assert head == (f"{tmp_path / 'hf'} (trained elsewhere: its training step is not known); "
                    f"batches from the train split of shakespeare, tokenized with the tokenizer "
                    f"{tmp_path / 'hf'}; 1 batch(es)")
    assert line.startswith("Tr(H) = ") and "(standard error " in line and "+-" not in line


def test_an_export_is_analysed_on_its_runs_own_data_split_and_step(tmp_path, capsys):
    """The HF directory carries the run's training config: `load_run` of the export reads the
    run's own split (not a fresh split of the default corpus under the export's tokenizer),
    at the run's step, so `est hessian trace` gives the run's number on either."""
    run = train(TrainConfig(scale="smoke", steps=4, eval_every=2, train_fraction=0.5),
                tmp_path / "run", progress=False)
    assert main(["export", str(run), "--to", str(tmp_path / "hf")]) == 0
    original, exported = load_run(run), load_run(tmp_path / "hf")
    assert exported.step == original.step == 4
    assert exported.data.fingerprint == original.data.fingerprint
    assert exported.data.val.tolist() == original.data.val.tolist()
    assert len(exported.data.train) == len(original.data.train)  # train_fraction kept
    traces = []
    for source in (run, tmp_path / "hf"):
        capsys.readouterr()
        assert main(["hessian", "trace", str(source), "--probes", "4", "--batches", "1",
                     "--seed", "3", "--json", "--no-progress"]) == 0
        traces.append(json.loads(capsys.readouterr().out)["trace"])
    assert traces[0] == pytest.approx(traces[1], rel=1e-4)
