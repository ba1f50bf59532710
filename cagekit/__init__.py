"""cagekit: build, train, score and package blue-team agents for CybORG and the CAGE challenges."""

from __future__ import annotations

__version__ = "0.1.0"


def make_env(*args, **kwargs):  # noqa: ANN002, ANN003 - re-exported, see cagekit.wrappers.make_env
    from cagekit.wrappers import make_env as _make_env

    return _make_env(*args, **kwargs)


__all__ = ["__version__", "make_env"]
