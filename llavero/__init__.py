"""Llavero: a self-hosted API key console and key verification service."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

__version__ = "0.1.0"

PURE_PYTHON = os.environ.get("LLAVERO_PURE_PYTHON") == "1"
"""Import the `.py` files of the modules mypyc compiled (setup.py), not their extensions."""


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Finds a `llavero` module's `.py` file before the normal finders find its compiled
    extension next to it (they try extensions first). All or none: a native class is only
    native to the modules compiled with it, so the compiled ones are never mixed with these."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if path is None or not fullname.startswith(__name__ + "."):
            return None
        leaf = fullname.rpartition(".")[2]
        for folder in path:
            source = os.path.join(folder, leaf + ".py")
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(fullname, source)
        return None


if PURE_PYTHON:
    sys.meta_path.insert(0, _SourceFirst())
