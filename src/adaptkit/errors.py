"""User-facing errors: one clear line each, exit status 2, never a traceback."""

from __future__ import annotations

from collections.abc import Iterable


class UserError(Exception):
    """A mistake in the user's input (recipe, dataset, model path, command line).

    Each line of ``lines`` is printed on its own; the CLI exits with status 2.
    Raise it with a message that names the file, key or value and what would be valid.
    """

    exit_code = 2

    def __init__(self, *lines: str) -> None:
        flat = [line for line in lines if line]
        super().__init__("\n".join(flat))
        self.lines: list[str] = flat

    @classmethod
    def collect(cls, lines: Iterable[str]) -> "UserError":
        """Build one error from many collected messages."""
        return cls(*lines)


class PluginError(UserError):
    """A plugin could not be loaded, or two plugins registered one name."""
