"""Prepared data (`est data prepare`, `--data`): the memmaps hold every document once, in
order, under the tokenizer's own ids; preparation resumes after a crash to the same bytes and
never leaves half-written files under their final names; training reads the directory."""

import json

import numpy as np
import yaml
import pytest
from tokenizers import Tokenizer
from tokenizers.decoders import ByteLevel as ByteLevelDecoder
from tokenizers.models import BPE
from tokenizers.pre_tokenizers import ByteLevel
from tokenizers.trainers import BpeTrainer

import est_analysis.data.prepared as prepared
from est_analysis.cli.main import main
from est_analysis.data import PreparedDataError, describe, load_prepared, prepare
from est_analysis.training import RunDir, TrainConfig, train
from est_analysis.training.reopen import load_run

DOCS = [f"document {i}: " + " ".join(f"w{(i * 7 + j) % 97}" for j in range(40 + i % 13))
        for i in range(400)]


@pytest.fixture(scope="module")
def tokenizer_path(tmp_path_factory):
    tokenizer = Tokenizer(BPE())
    tokenizer.pre_tokenizer = ByteLevel(add_prefix_space=False)
    tokenizer.decoder = ByteLevelDecoder()
    trainer = BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"], show_progress=False,
                         initial_alphabet=ByteLevel.alphabet())
    tokenizer.train_from_iterator(DOCS, trainer=trainer)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tokenizer.save(str(path))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    path.write_text("\n".join(json.dumps({"text": d}) for d in DOCS) + "\n")
    return path


def _documents(tokens: np.ndarray, tokenizer: Tokenizer) -> list[str]:
    eot = tokenizer.token_to_id("<|endoftext|>")
    cuts = np.flatnonzero(tokens == eot)
    assert len(tokens) == 0 or cuts[-1] == len(tokens) - 1  # every document ends with <|endoftext|>
    return [tokenizer.decode(piece.tolist()) for piece in np.split(tokens, cuts + 1)[:-1]]


def test_every_document_lands_whole_in_one_split_in_order(corpus, tokenizer_path, tmp_path):
    out = prepare(str(corpus), tokenizer_path, tmp_path / "prepared", progress=False)
    data = load_prepared(out)
    reference = Tokenizer.from_file(str(tokenizer_path))
    train_docs, val_docs = _documents(data.train, reference), _documents(data.val, reference)
    assert sorted(train_docs + val_docs) == sorted(DOCS)
    assert train_docs == [d for d in DOCS if d in set(train_docs)]  # corpus order kept
    assert 5 <= len(val_docs) <= 40  # ~5 % of 400 documents, held out at random
    assert val_docs != DOCS[-len(val_docs):]
    expected = np.concatenate([reference.encode(d).ids + [0] for d in DOCS if d in set(train_docs)])
    assert data.train.dtype == np.uint16 and np.array_equal(data.train, expected)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["documents"] == 400 and meta["val_documents"] == len(val_docs)
    assert (out / "tokenizer.json").exists() and data.vocab_size == 600
    assert prepare(str(corpus), tokenizer_path, out, progress=False) == out  # already done


def test_a_single_text_file_is_cut_at_line_breaks_into_held_out_blocks(tokenizer_path, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setattr(prepared, "BLOCK_CHARS", 2000)
    lines = [f"line {i} " + "abc " * (i % 30) + "\n" for i in range(3000)]
    (tmp_path / "one.txt").write_text("".join(lines))
    data = load_prepared(prepare(str(tmp_path / "one.txt"), tokenizer_path, tmp_path / "p",
                                 progress=False))
    decode = Tokenizer.from_file(str(tokenizer_path)).decode
    train, val = decode(data.train.tolist()), decode(data.val.tolist())
    assert sorted(train.splitlines() + val.splitlines()) == sorted(x[:-1] for x in lines)
    assert 0 < len(val) < 0.2 * len(train)


def test_interrupted_preparation_resumes_to_the_same_bytes(corpus, tokenizer_path, tmp_path,
                                                           monkeypatch):
    monkeypatch.setattr(prepared, "BATCH_CHARS", 3000)
    whole = prepare(str(corpus), tokenizer_path, tmp_path / "whole", progress=False)
    real, calls = prepared._write_batch, {"n": 0}

    def crash_on_the_fifth_batch(*args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        real(*args)

    monkeypatch.setattr(prepared, "_write_batch", crash_on_the_fifth_batch)
    with pytest.raises(KeyboardInterrupt):
        prepare(str(corpus), tokenizer_path, tmp_path / "resumed", progress=False)
    names = {p.name for p in (tmp_path / "resumed").iterdir()}
    assert {"train.bin", "val.bin", "meta.json"}.isdisjoint(names)  # nothing under a final name
    monkeypatch.setattr(prepared, "_write_batch", real)
    resumed = prepare(str(corpus), tokenizer_path, tmp_path / "resumed", progress=False)
    for name in ("train.bin", "val.bin", "meta.json"):
        assert (resumed / name).read_bytes() == (whole / name).read_bytes()
    assert not (resumed / prepared.STATE).exists()


def test_bad_data_directories_are_refused_with_the_fix(corpus, tokenizer_path, tmp_path):
    with pytest.raises(PreparedDataError, match="has no meta.json.*est data prepare"):
        load_prepared(tmp_path)
    out = prepare(str(corpus), tokenizer_path, tmp_path / "p", progress=False)
    (tmp_path / "other.jsonl").write_text(json.dumps({"text": "x"}) + "\n")
    with pytest.raises(PreparedDataError, match="already holds prepared data"):
        prepare(str(tmp_path / "other.jsonl"), tokenizer_path, out, progress=False)
    with (out / "val.bin").open("ab") as f:
        f.write(b"\x01")
    with pytest.raises(PreparedDataError, match="not a whole number of uint16 tokens"):
        load_prepared(out)
    nano = tmp_path / "nanogpt"
    nano.mkdir()
    np.array([1, 2, 5000, 0], dtype=np.uint16).tofile(nano / "train.bin")
    np.array([3, 0], dtype=np.uint16).tofile(nano / "val.bin")
    with pytest.raises(PreparedDataError, match="token id 5000, outside the tokenizer's vocabulary of 600"):
        describe(nano, tokenizer_path)
    assert not (nano / "meta.json").exists()


def test_every_token_id_is_checked_not_a_prefix(corpus, tokenizer_path, tmp_path):
    # an id past the first 1 Mi tokens of train.bin, or anywhere in val.bin, is found at
    # describe time; files changed after it are read again when loaded
    nano = tmp_path / "nanogpt"
    nano.mkdir()
    train_ids = np.ones(3 << 20, dtype=np.uint16)
    train_ids[-5] = 5000
    train_ids.tofile(nano / "train.bin")
    np.array([3, 0], dtype=np.uint16).tofile(nano / "val.bin")
    with pytest.raises(PreparedDataError, match="train.bin holds token id 5000"):
        describe(nano, tokenizer_path)
    train_ids[-5] = 1
    train_ids.tofile(nano / "train.bin")
    describe(nano, tokenizer_path)
    assert json.loads((nano / "meta.json").read_text())["max_token_id"] == 3
    np.array([3, 7000], dtype=np.uint16).tofile(nano / "val.bin")  # changed after describe
    with pytest.raises(PreparedDataError, match="train.bin or val.bin changed since meta.json"):
        load_prepared(nano)  # the content digest (issue #32)
    meta = json.loads((nano / "meta.json").read_text())
    del meta["content_digest"]  # as meta.json was written before content digests
    (nano / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(PreparedDataError, match="val.bin holds token id 7000, outside the vocabulary of 600"):
        load_prepared(nano)


def test_prepare_never_overwrites_a_users_files(corpus, tokenizer_path, tmp_path):
    mine = tmp_path / "u"
    mine.mkdir()
    (mine / "train.bin").write_text("mine")
    (mine / "tokenizer.json").write_text("{}")
    with pytest.raises(PreparedDataError, match="is not empty .*train.bin.* holds no preparation of ours"):
        prepare(str(corpus), tokenizer_path, mine, progress=False)
    assert (mine / "train.bin").read_text() == "mine" and (mine / "tokenizer.json").read_text() == "{}"
    assert sorted(p.name for p in mine.iterdir()) == ["tokenizer.json", "train.bin"]


def test_meta_json_fields_of_the_wrong_type_are_named(corpus, tokenizer_path, tmp_path):
    out = prepare(str(corpus), tokenizer_path, tmp_path / "p", progress=False)
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps(meta | {"vocab_size": "600"}))
    with pytest.raises(PreparedDataError, match="vocab_size='600' must be an integer"):
        load_prepared(out)


def test_nanogpt_files_described_then_trained_on_and_reopened(corpus, tokenizer_path, tmp_path):
    reference = Tokenizer.from_file(str(tokenizer_path))
    ids = [np.array(reference.encode(d).ids + [0], dtype=np.uint16) for d in DOCS]
    nano = tmp_path / "nanogpt"
    nano.mkdir()
    np.concatenate(ids[:360]).tofile(nano / "train.bin")  # as nanoGPT's prepare.py writes them
    np.concatenate(ids[360:]).tofile(nano / "val.bin")
    assert main(["data", "describe", str(nano), "--tokenizer", str(tokenizer_path)]) == 0
    assert sorted(p.name for p in nano.iterdir()) == ["meta.json", "train.bin", "val.bin"]  # only
    data = load_prepared(nano)
    assert np.array_equal(data.train, np.concatenate(ids[:360]))
    run = train(TrainConfig(scale="smoke", steps=6, eval_every=3, data=str(nano)),
                tmp_path / "run", progress=False)
    assert RunDir(run).read_summary()["final_val_loss"] < np.log(600) + 0.5
    assert load_run(run).data.fingerprint == data.fingerprint
    recorded = yaml.safe_load((run / "config.yaml").read_text())  # the data actually used
    assert recorded["corpus"] is None and recorded["data"] == str(nano)
    assert recorded["data_used"] == {"source": str(nano), "fingerprint": data.fingerprint,
                                     "train_tokens": len(data.train), "val_tokens": len(data.val)}
    with pytest.raises(ValueError, match="--data names prepared tokens"):
        TrainConfig(scale="smoke", data=str(nano), corpus="cpython-stdlib").resolved()
    other = tmp_path / "other.json"  # the tokenizer named by path changes: refused, not misread
    other.write_text(tokenizer_path.read_text())
    describe(nano, other)
    other.write_text(tokenizer_path.read_text() + "\n")
    with pytest.raises(PreparedDataError, match="changed since the ids were described"):
        load_prepared(nano)


def test_a_corpus_with_a_pretrained_tokenizer_is_prepared_once_into_the_cache(corpus,
                                                                              tokenizer_path,
                                                                              tmp_path):
    config = TrainConfig(scale="smoke", steps=4, eval_every=2, corpus=str(corpus),
                         tokenizer=str(tokenizer_path))
    first = load_run(train(config, tmp_path / "a", progress=False)).data
    second = load_run(train(config, tmp_path / "b", progress=False)).data
    direct = load_prepared(prepare(str(corpus), tokenizer_path, tmp_path / "p", progress=False))
    assert first.fingerprint == second.fingerprint == direct.fingerprint
    assert np.array_equal(first.train, direct.train) and first.vocab_size == 600


def _prepare_in_a_process(corpus: str, tokenizer: str, out: str) -> None:
    prepare(corpus, tokenizer, out, progress=False)


def test_processes_preparing_one_directory_take_turns(corpus, tokenizer_path, tmp_path):
    """As DDP ranks given --tokenizer do: the second waits for the first, then reuses it."""
    import multiprocessing

    alone = prepare(str(corpus), tokenizer_path, tmp_path / "alone", progress=False)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_prepare_in_a_process,
                               args=(str(corpus), str(tokenizer_path), str(tmp_path / "shared")))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0
    for name in ("train.bin", "val.bin", "meta.json"):
        assert (tmp_path / "shared" / name).read_bytes() == (alone / name).read_bytes()


def test_a_full_disk_while_preparing_names_the_directory_and_removes_the_partial_files(
        corpus, tokenizer_path, tmp_path, monkeypatch):
    import errno

    def full_disk(*args):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(prepared, "_write_batch", full_disk)
    with pytest.raises(PreparedDataError, match=f"no space left on the device writing {tmp_path / 'p'}"):
        prepare(str(corpus), tokenizer_path, tmp_path / "p", progress=False)
    assert not list((tmp_path / "p").glob("*.partial")) and not (tmp_path / "p" / prepared.STATE).exists()


def test_files_without_a_suffix_are_taken_with_glob(tokenizer_path, tmp_path, capsys):
    licences = tmp_path / "licences"
    licences.mkdir()
    for i in range(0, 400, 4):  # 100 documents, named as licence texts often are: no suffix
        (licences / f"LICENSE-{i}").write_text("\n".join(DOCS[i:i + 4]) + "\n")
    out = tmp_path / "prepared"
    assert main(["data", "prepare", str(licences), "--tokenizer", str(tokenizer_path),
                 "--out", str(out), "--no-progress"]) == 2
    assert "has no text files" in capsys.readouterr().err and not out.exists()
    assert main(["data", "prepare", str(licences), "--tokenizer", str(tokenizer_path),
                 "--out", str(out), "--no-progress", "--glob", "LICENSE-*"]) == 0
    data = load_prepared(out)
    assert json.loads((out / "meta.json").read_text())["documents"] == 100
    reference = Tokenizer.from_file(str(tokenizer_path))
    texts = sorted(_documents(data.train, reference) + _documents(data.val, reference))
    assert texts == sorted((licences / f"LICENSE-{i}").read_text() for i in range(0, 400, 4))
    assert main(["data", "prepare", str(licences / "LICENSE-0"), "--tokenizer", str(tokenizer_path),
                 "--out", str(tmp_path / "other"), "--glob", "*"]) == 2
    assert "is not a directory" in capsys.readouterr().err
