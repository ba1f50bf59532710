"""A package's public names imported when first asked for (PEP 562), for the packages whose light modules run
where their heavy ones are not needed: a submission's agents read `cagekit.engine.table` without CybORG, and a
trained team loads without its learner. It sits in the first layer so that every later one may use it."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, modules: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of `package`, whose name N lives in its submodule `modules[N]` (".config");
    a name is imported once, then kept in the package's namespace."""
    namespace = vars(sys.modules[package])  # the package's own, as it is being imported

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = namespace[name] = getattr(importlib.import_module(module, package), name)
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *modules})

    return __getattr__, __dir__
