"""What the bad-input table cannot show in one command (issue #32): a full disk during export,
an export killed midway, a missing optional dependency, an edited token cache, a corpus too
large to tokenize in memory, text that is not UTF-8, and HF remote code that must never run."""

import errno
import json
import sys
import warnings

import numpy as np
import pytest

import est_analysis.host_memory as host_memory
from est_analysis.cli.main import main
from est_analysis.data import load_corpus, prepare
from est_analysis.data.corpus import CorpusWarning
from tests.helpers import tiny_bpe_tokenizer

TRAIN = ["train", "--scale", "smoke", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "run"
    assert main([*TRAIN, "--steps", "8", "--out", str(path)]) == 0
    return path


def test_export_to_a_full_disk_is_one_line_and_leaves_nothing(run, tmp_path, monkeypatch, capsys):
    import transformers

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(transformers.PreTrainedModel, "save_pretrained", full)
    assert main(["export", str(run), "--to", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"no space left on the device writing {tmp_path / 'hf'}" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_an_export_killed_midway_is_cleaned_up_by_the_next_and_a_users_folder_kept(run, tmp_path):
    stale = tmp_path / ".hf.k3j_x9ab"  # what mkdtemp left when the export was killed
    stale.mkdir()
    (stale / "config.json").write_text("{}")
    (stale / "model.safetensors").write_bytes(b"partial")
    mine = tmp_path / ".hf.notes-dir"  # the same prefix, a user's own folder
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert main(["export", str(run), "--to", str(tmp_path / "hf")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hf.notes-dir", "hf"]
    assert (mine / "notes.txt").read_text() == "mine"


def test_eval_without_the_harness_names_the_extra_to_install(run, tmp_path, monkeypatch, capsys):
    task = tmp_path / "t.jsonl"
    task.write_text(json.dumps({"query": "a", "choices": [" b", " c"], "gold": 0}) + "\n")
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import lm_eval raises ImportError
    assert main(["eval", str(run), "--task", f"q=choice:{task}"]) == 2
    assert "install the eval extra, pip install 'est-analysis[eval]'" in capsys.readouterr().err


def test_an_edited_token_cache_is_refused_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("EST_CACHE_DIR", str(tmp_path / "cache"))
    corpus = tmp_path / "c.txt"
    corpus.write_text("some words of a small corpus, repeated over and over. " * 3000)
    data = load_corpus(str(corpus), 300)
    train = next((tmp_path / "cache").glob("tokens-*-train.npy"))
    assert (tmp_path / "cache" / (train.name + ".digest")).exists()
    ids = np.load(train)
    ids[len(ids) // 2] ^= 1  # one token id changed, inside the vocabulary
    np.save(train, ids)
    with pytest.raises(ValueError, match=f"{train} does not match the digest recorded"):
        load_corpus(str(corpus), 300)
    assert data.fingerprint  # the first load was fine


def test_a_corpus_too_large_to_tokenize_in_memory_is_refused_before_reading(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(host_memory, "host_available_bytes", lambda: 2**20)  # 1 MiB left
    corpus = tmp_path / "one-line.txt"
    corpus.write_text("word " * 20000)
    assert main([*TRAIN, "--corpus", str(corpus), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"tokenizing the corpus {corpus}" in err and "est data prepare" in err
    assert not (tmp_path / "out").exists()


def test_prepare_warns_about_text_that_is_not_utf8(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    for i in range(60):
        (corpus / f"{i}.txt").write_bytes(f"document {i}: plain words ".encode() * 40
                                          + "d\u00e9j\u00e0".encode("latin-1"))
    tokenizer = tiny_bpe_tokenizer(tmp_path, "plain words of a document")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepare(str(corpus), tokenizer, tmp_path / "out", progress=False)
    found = [str(w.message) for w in caught if issubclass(w.category, CorpusWarning)]
    assert len(found) == 60 and "2 undecodable byte sequence(s) replaced by U+FFFD" in found[0]


def test_hf_remote_code_never_runs(run, tmp_path, monkeypatch):
    hf = tmp_path / "hf"
    assert main(["export", str(run), "--to", str(hf)]) == 0
    marker = tmp_path / "pwned"
    (hf / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    config = json.loads((hf / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.Evil", "AutoConfig": "modeling_evil.C"}
    (hf / "config.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    main(["hessian", "trace", str(hf), "--probes", "6", "--no-progress"])
    main(["export", str(hf / "x"), "--to", str(tmp_path / "again")])
    assert not marker.exists()
