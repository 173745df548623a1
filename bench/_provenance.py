"""Provenance of a benchmark result: the command that made it, the commit and the date.

Every bench script records these in what it writes to bench/results/:

    from _provenance import provenance, md_line, stamp
    p = provenance()                      # {"command": "python bench/x.py ...", "commit": ..., "date": ...}
    out.write_text(json.dumps(stamp(result, p)))     # a dict gets a "provenance" key; a list, one per row
    md = "\\n".join([title, "", md_line(p), "", ...])

`commit` is `git rev-parse HEAD` of the repository; `dirty` says whether tracked files differed
from it when the script ran (then the commit alone does not reproduce the figure).
"""

from __future__ import annotations

import datetime
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(argv: list[str] | None = None) -> dict:
    """The command line (as `python bench/<script> ARGS`), the commit and the UTC date of this run."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]) if argv else Path("?")
    try:
        script = script.resolve().relative_to(ROOT)
    except ValueError:
        pass
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"command": shlex.join(["python", script.as_posix(), *argv[1:]]),
            "commit": _git("rev-parse", "HEAD") or "unknown",
            "dirty": bool(status) if status is not None else None,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def md_line(p: dict | None = None) -> str:
    """One Markdown line stating the command, commit and date."""
    p = p or provenance()
    dirty = " (with uncommitted changes)" if p.get("dirty") else ""
    return f"Command: `{p['command']}`; commit `{p['commit']}`{dirty}; date {p['date']}."


def stamp(result, p: dict | None = None):
    """Record provenance in a JSON result: a dict gets a "provenance" key; each dict row of a list
    gets one unless it already has its own (rows appended by earlier runs keep theirs)."""
    p = p or provenance()
    if isinstance(result, dict):
        result["provenance"] = p
    elif isinstance(result, list):
        for row in result:
            if isinstance(row, dict):
                row.setdefault("provenance", p)
    return result
