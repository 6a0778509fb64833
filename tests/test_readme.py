"""The README's code runs as written: its "EST in your own training loop" block trains."""

import math
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readmes_training_loop_runs_learns_and_reports(capsys):
    text = README.read_text()
    section = text[text.index("## EST in your own training loop"):]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)[:1]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    loss = namespace["loss"].item()
    assert math.isfinite(loss) and loss < math.log(namespace["data"].vocab_size)  # it learned
    printed = capsys.readouterr().out.splitlines()
    steps = namespace["cfg"].steps
    assert [line.split(":")[0] for line in printed] == [f"step {s}" for s in [*range(0, steps, 10), steps - 1]]
    assert printed[-1] == f"step {steps - 1}: train loss {loss:.3f}, stage 3"
