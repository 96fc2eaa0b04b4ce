"""The study's stages: one function per stage, ``(params, paths) -> files``.

Each stage declares the parameters it reads (``param_keys``); the runner hands it only those, so a
stage cannot read an undeclared value, and both orchestrators rerun it exactly when one of them
changes.
"""
from .keys import param_keys

__all__ = ["param_keys"]
