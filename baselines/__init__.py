"""Baselines behind the same :class:`instdiffedit.Editor` interface as InstDiffEdit."""

from baselines.diffedit import DiffEdit
from baselines.diffedit_ddim import DiffEditDDIM
from baselines.flowedit import FlowEdit
from baselines.instruction_editors import FluxKontext, QwenImageEdit
from baselines.ledits_pp import LeditsPP
from baselines.oracle import OracleInpaint
from baselines.sdedit import SDEdit

__all__ = ["DiffEdit", "DiffEditDDIM", "FlowEdit", "FluxKontext", "LeditsPP", "OracleInpaint", "QwenImageEdit", "SDEdit"]
