"""What every command shares: one error policy (a paragraph, not a traceback) and the console."""

from __future__ import annotations

import functools
import os
import warnings

import typer
from rich.console import Console
from rich.markup import escape

from longrec.errors import LongrecError, redact

console = Console(stderr=True)


def handle_errors(fn):
    """User errors -> one red paragraph on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("default")
                warnings.showwarning = _show_warning
                return fn(*args, **kwargs)
        except LongrecError as e:
            _error(str(e))
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except OSError as e:  # unreadable / unwritable paths, a directory where a file was expected, a full disk
            _error(os_error_message(e))
            raise typer.Exit(2) from None
        except RecursionError:
            _error("the input is nested too deeply to read (a TOML or JSON file with thousands of nested "
                   "tables or arrays?). Flatten it.")
            raise typer.Exit(2) from None
        except MemoryError:
            _error("out of memory. The request is too large for this machine: use a smaller --k, fewer users "
                   "or candidates, or a machine with more memory.")
            raise typer.Exit(2) from None
        except Exception as e:  # a bug, not bad input: still one paragraph, with a way to see the traceback
            if os.environ.get("LONGREC_DEBUG"):
                raise
            _error(f"internal error ({type(e).__name__}: {e}). This is a bug in longrec; please report it "
                   "with the command you ran. Set LONGREC_DEBUG=1 to see the traceback.")
            raise typer.Exit(1) from None

    return wrapper


def _error(text: str) -> None:
    """One red paragraph; the text is printed verbatim (brackets kept) with secrets redacted."""
    console.print(f"[bold red]error:[/] {escape(redact(text))}", highlight=False, soft_wrap=True)


def os_error_message(e: OSError) -> str:
    """An OSError as a sentence naming the path and what to do."""
    path = e.filename if e.filename is not None else "a file"
    what = {
        "PermissionError": f"permission denied for {path}: choose a path you can read/write, or fix its permissions.",
        "IsADirectoryError": f"{path} is a directory, but a file was expected: pass a file path.",
        "NotADirectoryError": f"{path}: a part of this path is a file, not a directory: choose another path.",
        "FileNotFoundError": f"{path} does not exist: check the path.",
        "FileExistsError": f"{path} already exists: choose another path.",
    }.get(type(e).__name__)
    if what is None:
        what = f"cannot read or write {path} ({e.strerror or e}). Check the path, free disk space and permissions."
    if e.filename2 is not None:
        what += f" (while moving it to {e.filename2})"
    return what


def _show_warning(message, category, filename, lineno, file=None, line=None):
    console.print(f"[yellow]warning:[/] {escape(redact(str(message)))}", highlight=False, soft_wrap=True)


def parse_ks(text: str) -> list[int]:
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise LongrecError(f"--k must be a comma-separated list of positive integers such as 10,20; got {text!r}.") from None
    if not ks or any(k < 1 for k in ks):
        raise LongrecError(f"--k must be a comma-separated list of positive integers such as 10,20; got {text!r}.")
    return ks
