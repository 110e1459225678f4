"""Registries: each extension point declares its components where they are defined.

A method registers its editor class with :func:`register_method` (a decorator on the class); a
backbone family with :func:`instdiffedit.backbones.base.register_backbone`; the harness keeps its
own registries of metric columns (:func:`benchmarks.metrics.columns.register_metric`) and splits
(:func:`benchmarks.data.items.register_split`), all of them a :class:`Registry`. The project's own
components declare themselves the same way as a plugin's: importing a component's module registers
it; the harness imports the project's modules and the plugin modules a user names
(``plugins=[...]``), and reads these declarations instead of keeping lists.

The reports order methods by role (:data:`ROLES`), then by the ``rank`` each declares: the
project's methods number theirs (:func:`in_report_order`), so that their order is written where
each is declared and never hangs on the order in which modules happen to be imported; a plugin's
method usually leaves it out and follows the project's methods of its role.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

if TYPE_CHECKING:
    from instdiffedit.types import Editor

T = TypeVar("T")


DECLARING_MODULES: set[str] = set()
"""The modules whose classes registered something: a plugin must be one of them (or hold one)."""


def declared(component: type) -> type:
    """Note that ``component``'s module declares a component; every ``register_*`` decorator calls it."""
    DECLARING_MODULES.add(component.__module__)
    return component


class Registry(Generic[T]):
    """Named declarations of one kind, in the order they were registered."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` as ``name``; a second, different declaration of one name is a ValueError."""
        if not name.isidentifier():
            raise ValueError(f"A {self.kind} needs a name of letters, digits and underscores, not {name!r}.")
        if name in self._entries and self._entries[name] != entry:
            raise ValueError(f"The {self.kind} {name!r} is declared twice: {self._entries[name]!r} and {entry!r}; rename one.")
        self._entries[name] = entry
        return entry

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            raise KeyError(f"No {self.kind} {name!r}; registered: {', '.join(self._entries) or 'none'}.")
        return self._entries[name]

    def get(self, name: str) -> T | None:
        return self._entries.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def values(self) -> list[T]:
        return list(self._entries.values())


Role = Literal["method", "ablation", "baseline", "upper bound", "composition"]
ROLES: tuple[Role, ...] = ("method", "ablation", "baseline", "upper bound", "composition")
"""The reports show methods in this order of roles; within a role, by :attr:`Method.rank`."""


@dataclass(frozen=True)
class Method:
    """``name``: the config option (``method=<name>``, ``conf/method/<name>.yaml``); ``role``: InstDiffEdit
    itself, an ablation of it, a baseline, an upper bound no method can beat (given the ground truth), or
    a composition of parts (``method=compose mask=... editor=...``, compared in its own grid, not the
    paper's tables); ``quick``: Hydra overrides of the speed benchmark's ``--quick`` (not paper
    settings); ``warmup``: Hydra overrides that keep the shape of every denoiser call and run few steps
    (``--short-warmup``); ``rank``: its place among the methods of its role in the reports (the project's
    methods number theirs, so that their order does not hang on the order modules are imported; a method
    without a rank follows the ranked ones of its role, in the order registered)."""

    name: str
    role: Role
    quick: tuple[str, ...] = ()
    warmup: tuple[str, ...] = ()
    rank: int | None = None


METHODS: Registry[Method] = Registry("method")


def register_method(
    name: str, *, role: Role = "baseline", quick: tuple[str, ...] = (), warmup: tuple[str, ...] = (), rank: int | None = None
) -> Callable[[type[Editor]], type[Editor]]:
    """Class decorator: declare the editor class as method ``name`` (stack it for one class run under two
    names); its config, ``conf/method/<name>.yaml``, names the class as its ``_target_``."""
    if role not in ROLES:
        raise ValueError(f"Method {name!r}: role {role!r} is none of {', '.join(ROLES)}.")

    def register(editor: type[Editor]) -> type[Editor]:
        METHODS.add(name, Method(name, role, tuple(quick), tuple(warmup), rank))
        return declared(editor)

    return register


def in_report_order(methods: Iterable[Method]) -> tuple[Method, ...]:
    """``methods`` in the reports' order: by role (:data:`ROLES`), then by rank; unranked methods follow
    the ranked ones of their role in the order given (the order registered)."""
    return tuple(sorted(methods, key=lambda method: (ROLES.index(method.role), method.rank is None, method.rank or 0)))
