"""The code a user's Python team brings with it: its file and the modules of its folder it imports.

Read by the evaluation (a journal resumes only the same code) and by `cagekit package` (the files a
submission must carry). Found from the import statements (late imports in functions included) and from what
importing the file loaded, never from installed packages or cagekit itself.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterable
from pathlib import Path


def remember_brought(module_name: str, names: Iterable[str]) -> None:
    """Record the modules that importing a team file as `module_name` loaded (`local_modules` reads them)."""
    _BROUGHT[module_name] = frozenset(names)


def local_modules(path: str | Path, module_name: str | None = None) -> list[Path]:
    """The code a team file brings with it: the file, the modules of its folder that its import statements name
    (anywhere in it, a function's late imports included, and on through those modules), and those that importing
    it as `module_name` loaded from its folder (an `importlib.import_module` of a computed name). Installed
    packages and cagekit itself are not its code, even when the file lies in a checkout of cagekit. A module
    that is a link is named by the link, where the team imports it from, not by its target."""
    file = Path(path).resolve()
    folder = file.parent
    files = {file}
    todo = [file]
    for name in _BROUGHT.get(module_name or "", ()):
        found = getattr(sys.modules.get(name), "__file__", None)
        # absolute only: some modules name a bare file (torch.classes: '_classes.py'), not a place
        place = Path(os.path.normpath(found)) if isinstance(found, str) and Path(found).is_absolute() else None
        if place is not None and _own_code(place, folder) and place not in files:
            files.add(place)
            todo.append(place)
    while todo:
        for place in _imported_files(todo.pop(), folder):
            if place not in files:
                files.add(place)
                todo.append(place)
    return sorted(files)


#: per module name given to `load_builder`: the modules that importing the team file loaded
_BROUGHT: dict[str, frozenset[str]] = {}
#: cagekit's own package folder: never a team's code, though a team file may lie in a checkout of cagekit
_CAGEKIT = Path(__file__).resolve().parents[1]


def _own_code(place: Path, folder: Path) -> bool:
    """Whether the file `place` is a team's code for a team in `folder` (a .py file there, not installed)."""
    return place.suffix == ".py" and place.is_relative_to(folder) and place.is_file() and \
        not place.is_relative_to(_CAGEKIT) and not {"site-packages", "dist-packages"} & set(place.parts)


def _imported_files(file: Path, folder: Path) -> list[Path]:
    """The files of `folder` that the import statements of the Python file `file` may load (none if it does not
    parse: its import has failed, or will, with its own error)."""
    try:
        tree = ast.parse(file.read_bytes(), str(file))
    except (SyntaxError, ValueError, OSError):
        return []
    dotted: list[list[str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            dotted.extend(alias.name.split(".") for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base: list[str] = []
            if node.level:  # relative: from the package the file lies in
                package = file.parent
                for _ in range(node.level - 1):
                    package = package.parent
                if not package.is_relative_to(folder):
                    continue
                base = list(package.relative_to(folder).parts)
            module = base + (node.module.split(".") if node.module else [])
            dotted.extend([*module, alias.name] for alias in node.names if alias.name != "*")
            dotted.append(module)
    found = []
    for parts in dotted:
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py too
            for place in (folder.joinpath(*parts[:i]).with_suffix(".py"), folder.joinpath(*parts[:i], "__init__.py")):
                if _own_code(place, folder):
                    found.append(place)
    return found
