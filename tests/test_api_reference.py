"""The API reference is generated from the package and the built site documents every public
function and class of every module (the command line aside, which `est --help` documents)."""

import importlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "update_api.py"


def test_the_reference_page_is_generated_from_the_package():
    check = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


@pytest.fixture(scope="module")
def built_reference(tmp_path_factory) -> str:
    pytest.importorskip("mkdocstrings")
    site = tmp_path_factory.mktemp("site")
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                           cwd=ROOT, capture_output=True, text=True,
                           env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert build.returncode == 0, build.stderr[-2000:]
    return (site / "api" / "index.html").read_text()


def _public_names() -> list[str]:
    """module.name of every function and class defined (not imported) in a module of the
    package, outside est_analysis.cli, whose name has no leading underscore."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from update_api import modules
    finally:
        sys.path.pop(0)
    names = []
    for module_name in modules():
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            if (not name.startswith("_") and (inspect.isfunction(value) or inspect.isclass(value))
                    and value.__module__ == module_name):
                names.append(f"{module_name}.{name}")
    return names


def test_every_public_name_is_in_the_built_site(built_reference):
    names = _public_names()
    assert len(names) > 300
    missing = [name for name in names if f'id="{name}"' not in built_reference]
    assert not missing, f"not in the built API reference: {missing}"
    # the README's own training loop imports these, and its loss is the model's
    for name in ("est_analysis.data.batches.step_batch", "est_analysis.training.loop.init_seed",
                 "est_analysis.models.head_loss.linear_cross_entropy"):
        assert f'id="{name}"' in built_reference
