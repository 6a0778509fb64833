"""Issue #26's measurement: est eval's multiple-choice accuracy on a SentencePiece (Llama) run with the
harness's default target_delimiter " " (the old task format: a doubled space before each
choice) and with "" (now), beside a direct computation with the run's own tokenizer.

    scripts/fetch_tokenizers.sh && python benchmarks/eval_sentencepiece_delimiter.py /tmp/evalba
"""
import contextlib, io, json, sys
from pathlib import Path
import torch
import est_analysis.harness as harness
from est_analysis.cli.main import main
from est_analysis.training import TrainConfig, load_run, train

tmp = Path(sys.argv[1]); tmp.mkdir(parents=True, exist_ok=True)
WORDS = "the king queen lord lady sword crown night day love death heart blood fair".split()
run = tmp / "run"
if not (run / "summary.json").exists():
    train(TrainConfig(scale="smoke", steps=200, eval_every=100, preset="est-tinyllama",
                      tokenizer=str(Path(".tokenizers/tokenizer.model").resolve())), run, progress=False)
quiz = [{"query": f"And the {WORDS[i % 14]} said unto the", "choices": [" " + WORDS[(i * 3 + j * 5) % 14] for j in range(4)],
         "gold": (i * 7) % 4} for i in range(32)]
(tmp / "quiz.jsonl").write_text("\n".join(json.dumps(q) for q in quiz))

def est_eval():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["eval", str(run), "--task", f"quiz=choice:{tmp / 'quiz.jsonl'}", "--json"]) == 0
    return {r["metric"]: r["value"] for r in json.loads(out.getvalue())["table"]}

after = est_eval()
now = harness.task_config
harness.task_config = lambda *a: {k: v for k, v in now(*a).items() if k != "target_delimiter"}
before = est_eval()
harness.task_config = now

trained = load_run(run); model, tok = trained.model.eval(), trained.data.tokenizer
def ll(context, continuation):
    ctx = tok.encode_batch([context])[0].ids
    whole = tok.encode_batch([context + continuation])[0].ids
    with torch.no_grad():
        logits = model(torch.tensor([whole]))[0, len(ctx) - 1:-1].log_softmax(-1)
    return logits[range(len(whole) - len(ctx)), torch.tensor(whole[len(ctx):])].sum().item()
direct = sum(max(range(4), key=lambda i: ll(q["query"], q["choices"][i])) == q["gold"] for q in quiz) / len(quiz)
result = {"items": len(quiz), "before_acc (target_delimiter ' ')": before["acc"],
          "after_acc (target_delimiter '')": after["acc"], "direct_acc": direct}
Path("benchmarks/results/eval_sentencepiece_delimiter.json").write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps(result))
