"""The verify hot path compiled to C with mypyc (docs/architecture.md, "Compiled modules").

Everything else is in pyproject.toml; only `ext_modules` needs code. Every install builds the
modules in `COMPILED` (`make install`, `pip install .`, a wheel); with `LLAVERO_PURE_PYTHON=1`
set at build time nothing is compiled (a machine without a C compiler), and set at run time
the `.py` files are imported instead of the built extensions (`llavero/__init__.py`).
"""

from __future__ import annotations

import os

from setuptools import Extension, setup

# Only where it pays (`python -m bench.inprocess`): what a cached verify runs. They are compiled
# together, as one group: a native class is only native to the modules compiled with it.
COMPILED = [
    "llavero/api/fast_verify.py",
    "llavero/core/cache.py",
    "llavero/core/keyformat.py",
    "llavero/core/leases.py",
    "llavero/core/limits.py",
    "llavero/core/meter.py",
    "llavero/core/verify.py",
]
# The build environment (pyproject.toml, `[build-system]`) holds setuptools, mypy and the two
# packages whose types the fast path uses (starlette, orjson): no pydantic for the plugin of
# `[tool.mypy]`. What else the compiled modules import is followed silently (an unknown
# package is `Any` to them) and type-checked with the rest by `make typecheck`.
MYPY_OPTIONS = ["--config-file=", "--strict", "--follow-imports=silent"]


def ext_modules() -> list[Extension]:
    if os.environ.get("LLAVERO_PURE_PYTHON") == "1":
        return []
    from mypyc.build import mypycify

    return mypycify([*MYPY_OPTIONS, *COMPILED], group_name="llavero_core", opt_level="3")


setup(ext_modules=ext_modules())
