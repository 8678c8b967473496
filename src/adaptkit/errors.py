"""User-facing errors: one clear line each, exit status 2, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when the message is empty), for a
    one-line error that names the cause."""
    return (str(exc).strip() or type(exc).__name__).splitlines()[0]


class UserError(Exception):
    """A mistake in the user's input (recipe, dataset, model path, command line).

    Each line of ``lines`` is printed on its own; the CLI exits with status 2.
    Raise it with a message that names the file, key or value and what would be valid.
    """

    exit_code = 2
    #: True once :meth:`print_on_every_process` printed the lines; the CLI does not print them again.
    printed = False

    def __init__(self, *lines: str) -> None:
        flat = [line for line in lines if line]
        super().__init__("\n".join(flat))
        self.lines: list[str] = flat

    def print(self) -> None:
        """``error: <line>`` on stderr for each line (what the CLI prints).

        Each line goes out in one write, newline included, so the lines of processes sharing one
        stderr (torchrun's ranks) do not run into each other."""
        for line in self.lines:
            sys.stderr.write(f"error: {line}\n")
            sys.stderr.flush()

    def print_on_every_process(self, barrier: Callable[[], None]) -> UserError:
        """Print now, then wait at ``barrier`` (a collective every process of the run calls), so
        every process has said why before any exits: torchrun stops the others as soon as one exits."""
        self.print()
        barrier()
        self.printed = True
        return self

    @classmethod
    def collect(cls, lines: Iterable[str]) -> "UserError":
        """Build one error from many collected messages."""
        return cls(*lines)


class IOFailure(UserError):
    """An operating-system error on a path (permission denied, a full or read-only disk): one line,
    exit status 74 (``EX_IOERR`` from sysexits.h), so scripts can tell it from a mistake in the input (2)."""

    exit_code = 74

    @classmethod
    def from_os_error(cls, exc: OSError, doing: str) -> "IOFailure":
        """``<path>: cannot <doing> (<the system's reason>)``."""
        path = f"{exc.filename}: " if exc.filename else ""
        return cls(f"{path}cannot {doing} ({exc.strerror or exc})")


class PluginError(UserError):
    """A plugin could not be loaded, or two plugins registered one name."""
