"""`est data prepare` encodes every document as plain text and exactly as if encoded whole,
for each tokenizer format, checked against the tokenizer library's own encoding of the whole
document (tiktoken's `encode_ordinary`, SentencePiece's `encode`, `tokenizers` with special
tokens split as text); line endings are kept unless `--newlines lf`."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer
from tokenizers.decoders import ByteLevel as ByteLevelDecoder
from tokenizers.models import BPE
from tokenizers.pre_tokenizers import ByteLevel
from tokenizers.trainers import BpeTrainer

import est_analysis.data.prepared as prepared
from est_analysis.cli.main import main
from est_analysis.data import corpus_files, load_prepared, prepare

REAL = Path(os.environ.get("EST_TEST_TOKENIZERS", Path(__file__).parents[2] / ".tokenizers"))
BLOCK = 700  # small blocks: every document below is cut many times


def _documents() -> list[str]:
    """Documents longer than many blocks: a play, code, paragraph breaks and runs of spaces at
    every position (the cut GPT-2's regex is sensitive to: '.\\n\\nM'), CRLF and CR line ends,
    a literal <|endoftext|> and </s>, non-ASCII text."""
    play = corpus_files("shakespeare")[0].read_text()[:6000]
    code = corpus_files("cpython-stdlib")[0].read_text()[:6000]
    paragraphs = "".join(f"Word{i}.\n\nM{'  ' * (i % 3)}next{i}\t \n" for i in range(300))
    windows = "line one\r\nline two\r\n\r\nold mac\rend  \r\n" * 80
    injected = "before <|endoftext|> after </s> and <s> " * 60
    unicode = "naïve café — 東京 ünïcödé  spaces\u00a0nbsp\n" * 80
    long = [play, code, paragraphs, windows, injected, unicode]
    held = next(i for i in range(len(long), 1000) if prepared.held_out(i))  # one in each split
    return long + [f"short document {i}\n" for i in range(len(long), held + 1)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("long") / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in _documents()))
    return path


@pytest.fixture(scope="module")
def bpe_json(tmp_path_factory) -> Path:
    tokenizer = Tokenizer(BPE())
    tokenizer.pre_tokenizer = ByteLevel(add_prefix_space=False)
    tokenizer.decoder = ByteLevelDecoder()
    trainer = BpeTrainer(vocab_size=800, special_tokens=["<|endoftext|>"], show_progress=False,
                         initial_alphabet=ByteLevel.alphabet())
    tokenizer.train_from_iterator(_documents(), trainer=trainer)
    path = tmp_path_factory.mktemp("bpe") / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def _whole_tiktoken(path: Path):
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import load_tiktoken_bpe
    from tiktoken_ext.openai_public import r50k_pat_str
    encoding = tiktoken.Encoding("gpt2", pat_str=r50k_pat_str,
                                 mergeable_ranks=load_tiktoken_bpe(str(path)),
                                 special_tokens={"<|endoftext|>": 50256})
    return encoding.encode_ordinary, 50256


def _whole_sentencepiece(path: Path):
    import sentencepiece
    processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
    return processor.encode, processor.piece_to_id("</s>")


def _whole_tokenizers(path: Path):
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.encode_special_tokens = True
    return (lambda text: tokenizer.encode(text, add_special_tokens=False).ids,
            tokenizer.token_to_id("<|endoftext|>"))


def _check_whole(out: Path, whole, separator: int, documents: list[str]) -> None:
    """train.bin + val.bin are, document by document, the whole-document ids + separator."""
    data = load_prepared(out)
    expected = {i: whole(d) + [separator] for i, d in enumerate(documents)}
    got = {"train": [], "val": []}
    for i in range(len(documents)):
        got["val" if prepared.held_out(i) else "train"] += expected[i]
    assert data.train.tolist() == got["train"]
    assert data.val.tolist() == got["val"]
    # only the separators the pipeline writes are special: one per document
    assert int((np.asarray(data.train) == separator).sum() + (np.asarray(data.val) == separator).sum()) == len(documents)


@pytest.mark.parametrize("kind", ["tiktoken", "sentencepiece", "tokenizers", "llama"])
def test_long_documents_are_encoded_exactly_as_whole(kind, corpus, bpe_json, sentencepiece_model,
                                                     tmp_path, monkeypatch):
    paths = {"tiktoken": REAL / "gpt2.tiktoken", "llama": REAL / "tokenizer.model",
             "sentencepiece": sentencepiece_model, "tokenizers": bpe_json}
    path = paths[kind]
    if not path.exists():
        pytest.skip("no .tokenizers/ (scripts/fetch_tokenizers.sh)")
    monkeypatch.setattr(prepared, "BLOCK_CHARS", BLOCK)
    whole, separator = {"tiktoken": _whole_tiktoken, "tokenizers": _whole_tokenizers}.get(
        kind, _whole_sentencepiece)(path)
    documents = _documents()
    if kind == "tiktoken":  # the half-way case too: one block in the stream of a mixed file
        assert any(len(d) > 5 * BLOCK for d in documents)
    _check_whole(prepare(str(corpus), path, tmp_path / "p", progress=False), whole, separator,
                 documents)


def test_the_cut_never_changes_ids_where_gpt2s_regex_is_sensitive(monkeypatch, tmp_path):
    """Cutting '.\\n\\nM' after the first line break gives [13, 628, 44] instead of the whole
    text's [13, 198, 198, 44]: every block size puts some cut at that spot."""
    path = REAL / "gpt2.tiktoken"
    if not path.exists():
        pytest.skip("no .tokenizers/ (scripts/fetch_tokenizers.sh)")
    whole, separator = _whole_tiktoken(path)
    doc = "".join(f"{'x' * (i % 11)}.\n\nM " for i in range(400))
    files = tmp_path / "docs"
    files.mkdir()
    (files / "a.txt").write_text(doc)
    shorts = [f"short {i}" for i in range(1, 29)]  # document 28 is held out
    for i, short in enumerate(shorts, 1):
        (files / f"b{i:02d}.txt").write_text(short)
    for block in (37, 64, 101):
        monkeypatch.setattr(prepared, "BLOCK_CHARS", block)
        _check_whole(prepare(str(files), path, tmp_path / f"p{block}", progress=False), whole,
                     separator, [doc, *shorts])


def test_line_endings_are_kept_unless_asked_to_become_lf(bpe_json, tmp_path):
    files = tmp_path / "docs"
    files.mkdir()
    texts = [f"doc {i}\r\nsecond line\rthird\n" * 30 for i in range(40)]  # 28 is held out
    for i, text in enumerate(texts):
        (files / f"{i:02d}.txt").write_bytes(text.encode())
    whole, separator = _whole_tokenizers(bpe_json)
    _check_whole(prepare(str(files), bpe_json, tmp_path / "kept", progress=False), whole,
                 separator, texts)
    assert main(["data", "prepare", str(files), "--tokenizer", str(bpe_json), "--out",
                 str(tmp_path / "lf"), "--newlines", "lf", "--no-progress"]) == 0
    lf = [t.replace("\r\n", "\n").replace("\r", "\n") for t in texts]
    _check_whole(tmp_path / "lf", whole, separator, lf)
    meta = [json.loads((tmp_path / d / "meta.json").read_text()) for d in ("kept", "lf")]
    assert [m["newlines"] for m in meta] == ["keep", "lf"]
    assert meta[0]["fingerprint"] != meta[1]["fingerprint"]


def test_the_converted_tokenizers_bpe_gives_tiktokens_ids(tmp_path):
    """Our conversion of `*.tiktoken` ranks (used to decode and evaluate) and tiktoken (used to
    prepare) agree on ordinary text, so a run's ids decode as they were made."""
    path = REAL / "gpt2.tiktoken"
    if not path.exists():
        pytest.skip("no .tokenizers/ (scripts/fetch_tokenizers.sh)")
    from est_analysis.data.ordinary import ordinary_encoder
    from est_analysis.data.tokenizer_files import load_tokenizer
    whole, _ = _whole_tiktoken(path)
    converted = ordinary_encoder(load_tokenizer(path))
    documents = _documents()
    assert [ids.tolist() for ids in converted.encode(documents)] == [whole(d) for d in documents]
