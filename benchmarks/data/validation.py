"""Up-front validation of a split's input: every problem collected, then reported in one error.

A split that reads user-supplied files (a manifest, the PIE-Bench mapping file) checks all of
them when it is built, before any model loads, and names every problem with its place (a line
of the manifest, an item id) so that one run shows the user everything to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.data.splits import MissingFilesError


class SplitInputError(MissingFilesError):
    """A split's files are missing or invalid; the message lists every problem with its place.

    A subclass of :class:`MissingFilesError` so that the harness reports it as it reports
    missing files: the message alone, no traceback, before any model loads.
    """


@dataclass
class Problems:
    """Problems found while validating a split's input, each with where it is."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, where: str, problem: str) -> None:
        self.items.append((where, problem))

    def raise_if_any(self, what: str, fix: str) -> None:
        """Raise :class:`SplitInputError` listing every problem, if there is any.

        ``what`` names the input ("the manifest /data/items.csv"), ``fix`` says what to do.
        """
        if not self.items:
            return
        lines = "\n".join(f"  {where}: {problem}" for where, problem in self.items)
        raise SplitInputError(f"{len(self.items)} problem(s) in {what}:\n{lines}\n{fix}")
