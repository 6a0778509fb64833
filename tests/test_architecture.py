"""The package's shape: every module imports on its own in a fresh interpreter, imports run
only downward through the layers below, no package code imports the tests, and the package
works installed from a wheel (its data files included) outside the source checkout."""

import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "est_analysis"

# bottom to top; a unit is a top-level module or sub-package of est_analysis, and it may import
# only from units of lower layers (and from itself)
LAYERS = [
    {"io", "stats", "seeding", "model_config", "paper", "domains", "host_memory"},
    {"subnet", "data"},
    {"models", "schedule"},
    {"loss", "methods"},
    {"cost"},
    {"training"},
    {"hessian", "landscape"},
    {"diagnostics", "plotting"},
    {"compare", "repro", "export", "harness"},
    {"quickstart"},
    {"cli"},
]
LAYER_OF = {unit: level for level, units in enumerate(LAYERS) for unit in units}


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, `if TYPE_CHECKING:` blocks excepted."""
    tree = ast.parse(path.read_text())
    skipped = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
               and getattr(block.test, "id", None) == "TYPE_CHECKING"
               for node in ast.walk(block)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names
                      if (PACKAGE.parent / f"{node.module}.{alias.name}".replace(".", "/")).exists()]
    return found


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_unit_has_a_layer():
    units = {_unit(m) for m in _modules()} - {""}
    assert units <= set(LAYER_OF), f"place {sorted(units - set(LAYER_OF))} in LAYERS"


def test_imports_run_only_downward_and_never_into_the_tests():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _unit(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for line, module in _imports(path):
            assert not module.startswith("tests"), f"{path}:{line} imports {module}"
            if not module.startswith("est_analysis.") or _unit(module) == source or not source:
                continue
            if LAYER_OF[_unit(module)] >= LAYER_OF[source]:
                upward.append(f"{path.relative_to(ROOT)}:{line}: {source} -> {module}")
    assert not upward, "imports that do not run downward:\n" + "\n".join(upward)


FRESH_IMPORTS = """
import json, os, sys
import matplotlib, numpy, pandas, scipy.stats, tokenizers, torch, tqdm, yaml  # not ours: shared
failures = {}
for module in json.loads(sys.argv[1]):
    pid = os.fork()
    if pid == 0:  # a child with no est_analysis module loaded yet
        try:
            __import__(module)
        except BaseException as err:
            print(json.dumps({module: f"{type(err).__name__}: {err}"}), flush=True)
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1]:
        failures[module] = "failed"
print(json.dumps(failures))
"""


def test_every_module_imports_first_in_a_fresh_interpreter():
    """`python -c "import est_analysis.X"` for every X: each module is imported first in a
    process of its own (forked before any est_analysis module was loaded), so an import cycle
    cannot hide behind the order in which other modules happened to be imported."""
    result = subprocess.run([sys.executable, "-c", FRESH_IMPORTS, json.dumps(_modules())],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert json.loads(lines[-1]) == {}, "\n".join(lines)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package as a wheel installs it (no source checkout), unpacked into a directory."""
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(wheels), str(ROOT)], check=True, timeout=300,
                   capture_output=True)
    (wheel,) = wheels.glob("est_analysis-*.whl")
    site = tmp_path_factory.mktemp("site")
    zipfile.ZipFile(wheel).extractall(site)
    return site


def test_the_installed_package_works_outside_the_checkout(installed, tmp_path):
    assert (installed / "est_analysis" / "paper" / "numbers.csv").is_file()
    assert {p.name for p in (installed / "est_analysis" / "repro" / "configs").iterdir()} == {
        "table2.yaml", "table3.yaml", "table4.yaml", "table5.yaml", "inactive.yaml", "ladder.yaml",
        "walltime.yaml", "studies.yaml"}
    assert not (installed / "tests").exists()
    probe = """
import json, est_analysis
from est_analysis.paper import paper_numbers
from est_analysis.repro.experiments import load_experiment
from est_analysis.repro.runner import git_commit
from est_analysis.repro.workspace import find_workspace
print(json.dumps({"package": est_analysis.__file__, "workspace": str(find_workspace().root),
                  "runs": len(load_experiment("table2", "smoke").runs),
                  "paper_rows": len(paper_numbers("walltime")), "commit": git_commit()}))
"""
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env={"PYTHONPATH": str(installed),
                                                         "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout)
    assert Path(found["package"]).is_relative_to(installed)
    assert Path(found["workspace"]) == tmp_path.resolve()
    assert found["runs"] == 6 and found["paper_rows"] == 80  # Table 2 smoke: six rows, one seed
    assert "not a git checkout" in found["commit"]


def test_the_flops_model_depends_on_no_training_method():
    """The trainer's FLOPs column prices any subnet; it must not load MSG or any other method."""
    probe = ("import sys, est_analysis.cost.flops; "
             "print(sorted(m for m in sys.modules if m.startswith('est_analysis.')))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, timeout=120).stdout
    assert "est_analysis.cost.flops" in loaded and "est_analysis.methods" not in loaded
