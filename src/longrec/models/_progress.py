"""How models talk while they fit: one stderr console (the CLI prints through the same one, so
progress lines appear above its spinner) and a few resource helpers for fit estimates."""

from __future__ import annotations

import os
import sys

from rich.console import Console

#: shared by the models' progress lines and the command line
console = Console(stderr=True)


def progress_enabled(setting: bool | None) -> bool:
    """A model's `progress` setting: True/False as given; None = on when stderr is a terminal."""
    if setting is None:
        return sys.stderr.isatty()
    return bool(setting)


def report(enabled: bool, message: str) -> None:
    """One progress line on stderr (when enabled)."""
    if enabled:
        console.print(message, highlight=False, soft_wrap=True)


def available_memory_bytes() -> int | None:
    """Memory the OS can give this process now (MemAvailable on Linux); None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (0 where unknown)."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) * (1 if sys.platform == "darwin" else 1024)
    except (ImportError, OSError):
        return 0
