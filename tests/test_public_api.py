"""The public API stays small, lazy and unshadowed."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import pstfast


def test_no_public_name_is_shadowed_by_a_submodule() -> None:
    # importing pstfast.X binds the module to the attribute X: a function called X would vanish
    submodules = {m.name for m in pkgutil.iter_modules(pstfast.__path__)}
    assert not (set(pstfast.__all__) & submodules)
    for name in submodules:
        importlib.import_module(f"pstfast.{name}")
    for name in pstfast.__all__:
        assert not isinstance(getattr(pstfast, name), types.ModuleType), name


def test_import_is_light() -> None:
    code = "import sys, pstfast; print(sorted(m for m in ('pypff', 'numba', 'psycopg', 'pyarrow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
