"""The package's layers import only the layers below them (the order the README's Layout gives).

Data flows one way: scenario specs -> simulators (engine, twin) -> wrappers -> agents -> submissions (packaged
teams) -> evaluation (which scores teams of every kind, submissions included) -> the command line. Function-
level imports count too: a lazy import upward is still a cycle in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cagekit"
LAYERS = ["scenarios", "engine", "twin", "wrappers", "agents", "submissions", "evaluation", "cli"]


def cagekit_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every `cagekit...` import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, m) for line, m in found if m == "cagekit" or m.startswith("cagekit.")]


def layer_of_module(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def root_layer() -> int:
    """`import cagekit` loads the package's __init__: as high as what that imports."""
    levels = [layer_of_module(m) for _, m in cagekit_imports(PACKAGE / "__init__.py")]
    return max((lv for lv in levels if lv is not None), default=0)


def layer_of_file(path: Path) -> int | None:
    first = path.relative_to(PACKAGE).with_suffix("").parts[0]
    return LAYERS.index(first) if first in LAYERS else None


def test_every_module_belongs_to_a_layer():
    strays = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
              if p != PACKAGE / "__init__.py" and layer_of_file(p) is None]
    assert not strays, f"modules outside the layers {LAYERS}: {strays}"


def test_no_layer_imports_a_later_one():
    upward, root = [], root_layer()
    for path in sorted(PACKAGE.rglob("*.py")):
        own = layer_of_file(path)
        if own is None:  # the package's __init__: checked through root_layer's users
            continue
        for line, module in cagekit_imports(path):
            target = root if module == "cagekit" else layer_of_module(module)
            assert target is not None, f"{path.relative_to(PACKAGE)}:{line} imports {module}, in no layer"
            if target > own:
                upward.append(f"{path.relative_to(PACKAGE)}:{line} ({LAYERS[own]}) imports {module} "
                              f"({LAYERS[target]})")
    assert not upward, "imports against the layer order " + " < ".join(LAYERS) + ":\n" + "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path):
    """The scan is not vacuous: a lazy import of a later layer inside a function is found."""
    module = tmp_path / "probe.py"
    module.write_text("def f():\n    from cagekit.evaluation.harness import evaluate\n    import cagekit\n")
    assert [layer_of_module(m) for _, m in cagekit_imports(module) if m != "cagekit"] == [LAYERS.index("evaluation")]
