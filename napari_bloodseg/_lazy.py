"""Lazy package attributes (PEP 562): a package lists its public names and loads each module on first use, so
importing the package alone (the CLI's ``--help``) does not import torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose name ``n`` lives in its submodule ``exports[n]``."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            module = importlib.import_module(exports[name], package)
            value = getattr(module, name)
            setattr(importlib.import_module(package), name, value)  # later lookups skip this function
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(exports))

    return __getattr__, __dir__
