"""Write docs/api.md, the API reference, from the package itself: one section per subpackage
(introduced by its docstring's first sentence) and one mkdocstrings entry per module, so that
every public function and class appears in the built site (`tests/test_api_reference.py`
checks it). The command line (`est_analysis.cli`) is documented by `est --help` instead.

    python scripts/update_api.py          # rewrite docs/api.md
    python scripts/update_api.py --check  # exit 1 when docs/api.md is not what it would write
"""

import importlib
import pkgutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import est_analysis  # noqa: E402
from est_analysis.io import atomic_write_text  # noqa: E402

PAGE = ROOT / "docs" / "api.md"
LEFT_OUT = ("est_analysis.cli",)  # `est --help` documents it
HEAD = """# API reference

Generated from the package by `python scripts/update_api.py` (mkdocstrings renders each
module's docstrings; do not edit this page). One section per subpackage, one entry per module;
`est --help` documents the command line.
"""


def modules() -> list[str]:
    """Every module of the package except the command line, sorted, packages before their
    modules."""
    found = ["est_analysis"]
    for info in pkgutil.walk_packages(est_analysis.__path__, "est_analysis."):
        if not info.name.startswith(LEFT_OUT) and not info.name.endswith("__main__"):
            found.append(info.name)
    return sorted(found)


def _intro(name: str) -> str:
    doc = (importlib.import_module(name).__doc__ or "").strip()
    first = " ".join(doc.split("\n\n")[0].split())
    return first


def page() -> str:
    sections: dict[str, list[str]] = {}
    for name in modules():
        parts = name.split(".")
        package = name if importlib.util.find_spec(name).submodule_search_locations else ".".join(parts[:-1])
        section = package if package != "est_analysis" else "est_analysis"
        sections.setdefault(section, []).append(name)
    text = [HEAD]
    for section, names in sections.items():
        title = "Core modules" if section == "est_analysis" else f"`{section}`"
        text.append(f"## {title}\n\n{_intro(section)}\n")
        text.extend(f"::: {name}" for name in names)
        text.append("")
    return "\n".join(text)


if __name__ == "__main__":
    wanted = page()
    if "--check" in sys.argv[1:]:
        if PAGE.read_text() != wanted:
            sys.exit(f"{PAGE} is out of date: run python scripts/update_api.py")
    else:
        atomic_write_text(PAGE, wanted)
        print(f"{PAGE}: {len(modules())} modules")
