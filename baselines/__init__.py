"""Baselines behind the same :class:`instdiffedit.Editor` interface as InstDiffEdit."""

from baselines.diffedit import DiffEdit
from baselines.oracle import OracleInpaint
from baselines.sdedit import SDEdit

__all__ = ["DiffEdit", "OracleInpaint", "SDEdit"]
