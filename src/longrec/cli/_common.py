"""What every command shares: one error policy (a paragraph, not a traceback) and the console."""

from __future__ import annotations

import functools
import warnings

import typer
from rich.console import Console

from longrec.errors import LongrecError

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
            console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


def _show_warning(message, category, filename, lineno, file=None, line=None):
    console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def parse_ks(text: str) -> list[int]:
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise LongrecError(f"--k must be a comma-separated list of positive integers such as 10,20; got {text!r}.") from None
    if not ks or any(k < 1 for k in ks):
        raise LongrecError(f"--k must be a comma-separated list of positive integers such as 10,20; got {text!r}.")
    return ks
