"""How a failure reaches the user: one line on stderr, a non-zero exit, no traceback.

Commands raise and never print their own errors; ``LatticeGroup``, the class of
the ``lattice`` group, handles them once, at the top:

- click's own errors (a bad flag value, a missing argument, an unknown command)
  print as one line naming the flag, with a pointer to ``--help``; exit 2;
- what a user can cause (``user_error``): the project's errors (``HostError``,
  ``LatticeError`` such as no NATS server, ``ManifestError``), invalid values
  (``ValueError``, pydantic's included) and the expected OS errors (a file
  missing, a port in use) print their message; exit 1;
- anything else is a bug, whose traceback is worth seeing: it is not caught.

Every message printed is redacted and on one line (``shown``): an error may quote
a URL with a password, or text from the lattice holding terminal escapes.
"""

from __future__ import annotations

import errno
from typing import Any

import click
from pydantic import ValidationError

from deploy.errors import ManifestError
from host.errors import HostError
from lattice.errors import LatticeError
from lattice.redact import printable, redacted_text

# How click >= 8.2 shows a group's help when its subcommand is missing (8.1 exits instead).
HELP_ERRORS: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


def user_error(exc: BaseException) -> str | None:
    """The message for a failure the user can fix; None for a bug."""
    if isinstance(exc, HostError | LatticeError | ManifestError):
        return str(exc)
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{exc.title} {'.'.join(map(str, e['loc']))}={e['input']!r}: {e['msg']}"
            for e in exc.errors()
        )
    if isinstance(exc, ValueError):
        return str(exc)
    if isinstance(exc, OSError):
        return _os_error(exc)
    return None


def _os_error(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen, the port is taken: {exc.strerror or exc}"
    if exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc)


class LatticeGroup(click.Group):
    """The top ``lattice`` group: every error becomes one line (see the module docstring)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HELP_ERRORS:
            raise  # a group without its subcommand: the help is the answer
        except click.UsageError as exc:
            # click prints a usage error with the usage and a hint on lines of their own.
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            message = f"{exc.format_message()} (see `{where} --help`)"
            raise OneLineUsageError(shown(message)) from exc
        except click.ClickException as exc:
            message = shown(exc.format_message())
            if message == exc.format_message():
                raise
            usage = exc.exit_code == OneLineUsageError.exit_code
            raise (OneLineUsageError if usage else click.ClickException)(message) from exc
        except Exception as exc:
            problem = user_error(exc)
            if problem is None:
                raise
            raise click.ClickException(shown(problem)) from exc


def shown(message: str) -> str:
    """An error message as printed: URLs redacted, control characters escaped."""
    return printable(redacted_text(message))


class OneLineUsageError(click.ClickException):
    """A usage error shown as one line; exit status 2, as click's own."""

    exit_code = 2
