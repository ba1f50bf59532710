"""Shim for users who still type `python setup.py develop`; the project is configured in pyproject.toml."""

from setuptools import setup

setup()
