"""`est eval`: lm-evaluation-harness on local task files scores the exported model as a direct
computation with our own model does (greedy last word, perplexity, multiple-choice accuracy
by summed and length-normalised log-likelihood)."""

import json
import math

import pandas as pd
import pytest
import torch

from est_analysis.cli.main import main
from est_analysis.training import TrainConfig, load_run, train

pytest.importorskip("lm_eval")
WORDS = "the king queen lord lady sword crown night day love death".split()


def _log_likelihood(model, tokenizer, context: str, continuation: str) -> tuple[float, bool]:
    """(sum of log p(continuation | context), every continuation token greedy), the text
    tokenized as the run's own tokenizer tokenizes it whole: the continuation is what follows
    the context's tokens."""
    ctx = tokenizer.encode_batch([context])[0].ids
    whole = tokenizer.encode_batch([context + continuation])[0].ids
    assert whole[:len(ctx)] == ctx, "the context's tokens are not a prefix of the text's"
    cont = whole[len(ctx):]
    with torch.no_grad():
        logits = model(torch.tensor([ctx + cont]))[0, len(ctx) - 1:-1].log_softmax(-1)
    targets = torch.tensor(cont)
    return logits[range(len(cont)), targets].sum().item(), bool((logits.argmax(-1) == targets).all())


@pytest.mark.parametrize("kind", ["bpe", "sentencepiece"])
def test_local_tasks_score_as_our_direct_computation(kind, sentencepiece_model, tmp_path, capsys):
    """On a byte-level BPE (GPT-2) run and on a SentencePiece (Llama) run, where a doubled
    space before a choice changes its tokens (issue #26: acc 0.344 from the harness, 0.188
    directly, before the delimiter was set)."""
    spm = {"preset": "est-tinyllama", "tokenizer": str(sentencepiece_model)} if kind == "sentencepiece" else {}
    run = train(TrainConfig(scale="smoke", steps=60, eval_every=30, **spm), tmp_path / "run",
                progress=False)
    texts = [" ".join(WORDS[(i * 3 + j * 7) % len(WORDS)] for j in range(8)) for i in range(10)]
    quiz = [{"query": f"The {WORDS[i]} said to the", "choices": [" queen", " sword", " night"],
             "gold": i % 3} for i in range(9)]
    (tmp_path / "lw.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in texts))
    (tmp_path / "quiz.jsonl").write_text("\n".join(json.dumps(q) for q in quiz))
    assert main(["eval", str(run), "--task", f"lw=last-word:{tmp_path / 'lw.jsonl'}",
                 "--task", f"quiz=choice:{tmp_path / 'quiz.jsonl'}", "--json"]) == 0
    scores = {(r["task"], r["metric"]): r["value"] for r in json.loads(capsys.readouterr().out)["table"]}
    assert pd.read_csv(run / "eval.csv").shape[0] == len(scores)

    trained = load_run(run)
    model, tokenizer = trained.model.eval(), trained.data.tokenizer
    last_word = [_log_likelihood(model, tokenizer, *t.rsplit(" ", 1)[0:1], " " + t.rsplit(" ", 1)[1])
                 for t in texts]
    assert scores[("lw", "acc")] == pytest.approx(sum(g for _, g in last_word) / len(texts))
    assert scores[("lw", "perplexity")] == pytest.approx(
        math.exp(-sum(ll for ll, _ in last_word) / len(texts)), rel=1e-4)
    right = right_norm = 0
    for q in quiz:
        ll = [_log_likelihood(model, tokenizer, q["query"], c)[0] for c in q["choices"]]
        right += max(range(3), key=lambda i: ll[i]) == q["gold"]
        right_norm += max(range(3), key=lambda i: ll[i] / len(q["choices"][i])) == q["gold"]
    assert scores[("quiz", "acc")] == pytest.approx(right / len(quiz))
    assert scores[("quiz", "acc_norm")] == pytest.approx(right_norm / len(quiz))
    # a second evaluation of one task adds to the run's eval.csv instead of replacing it
    assert main(["eval", str(run), "--task", f"lw=last-word:{tmp_path / 'lw.jsonl'}", "--json"]) == 0
    capsys.readouterr()
    merged = pd.read_csv(run / "eval.csv")
    assert sorted(zip(merged["task"], merged["metric"])) == sorted(scores)


def test_the_harness_asks_for_each_continuation_exactly_as_the_task_file_writes_it(tmp_path):
    # the README's format gives each choice its own leading space (" queen"); the harness adds
    # its target_delimiter (" ") in front unless the task sets it empty, and "  queen" is other
    # tokens than the text's " queen" (a Llama tokenizer: "▁▁", "queen" against "▁queen")
    import yaml
    from lm_eval.tasks import TaskManager

    from est_analysis.harness import task_config
    records = {"choice": {"query": "The king said to the", "choices": [" queen", " sword"], "gold": 0},
               "last-word": {"text": "the king said to the queen"}}
    expected = {"choice": [("The king said to the", " queen"), ("The king said to the", " sword")],
                "last-word": [("the king said to the", " queen")]}
    for kind, record in records.items():
        name = kind.replace("-", "")
        (tmp_path / f"{name}.jsonl").write_text(json.dumps(record) + "\n")
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(task_config(name, kind, tmp_path / f"{name}.jsonl")))
        task = TaskManager(include_path=[str(tmp_path)], include_defaults=False).load_task_or_group([name])[name]
        doc = next(iter(task.test_docs()))
        requests = task.construct_requests(doc, task.doc_to_text(doc))
        requests = requests if isinstance(requests, list) else [requests]
        assert [r.arguments for r in requests] == expected[kind]


def test_eval_outside_a_git_checkout_prints_no_git_errors(tmp_path, monkeypatch, capfd):
    run = train(TrainConfig(scale="smoke", steps=4, eval_every=2), tmp_path / "run", progress=False)
    (tmp_path / "q.jsonl").write_text(json.dumps({"query": "a b", "choices": [" c", " d"], "gold": 0}))
    monkeypatch.chdir(tmp_path)  # not inside a git repository
    capfd.readouterr()
    assert main(["eval", str(run), "--task", f"q=choice:{tmp_path / 'q.jsonl'}", "--json"]) == 0
    assert "not a git repository" not in capfd.readouterr().err


def test_bad_task_specs_are_refused(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"query": "q", "choices": ["a"]}\n')
    run = tmp_path / "run"
    for spec, message in [("quiz", "expected NAME=KIND:FILE"),
                          (f"q=essay:{tmp_path / 'bad.jsonl'}", "kind 'essay' is not one of"),
                          (f"q=choice:{tmp_path / 'bad.jsonl'}", "bad.jsonl:1: a choice record needs")]:
        with pytest.raises(ValueError, match=message):
            from est_analysis.harness import parse_task
            parse_task(spec)
    assert main(["eval", str(run)]) == 2  # no tasks

