"""Download MovieLens archives from GroupLens into the cache, checked and extracted atomically.

Checksums: GroupLens publishes no sha256 we could pin with certainty, so the first
successful download records the archive's sha256 in a sidecar `<name>.zip.sha256`
(trust on first use); every later use of the cached archive is verified against it,
and a mismatch is a DownloadError. Known digests can be pinned in `KNOWN_SHA256`.

Extraction goes to a temporary folder inside the cache and is renamed into place, so
a crash never leaves a half-extracted dataset that `find_dataset` would pick up.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from longrec.errors import DownloadError

BASE_URL = "https://files.grouplens.org/datasets/movielens"
URLS: dict[str, str] = {n: f"{BASE_URL}/{n}.zip" for n in ("ml-100k", "ml-1m", "ml-latest-small")}
KNOWN_SHA256: dict[str, str] = {}  # name -> hex digest; empty: see module docstring
TIMEOUT_S = 10.0  # connect/read timeout, so an offline machine fails at once
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """$LONGREC_CACHE_DIR, else $XDG_CACHE_HOME/longrec, else ~/.cache/longrec."""
    env = os.environ.get("LONGREC_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "longrec"


def _open_url(url: str, timeout: float):
    """The single network entry point (tests replace it)."""
    return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - fixed https URLs


def _offline_help(name: str, url: str, reason: str) -> DownloadError:
    data_dir = os.environ.get("LONGREC_DATA_DIR")
    where = f"LONGREC_DATA_DIR ({data_dir})" if data_dir else "LONGREC_DATA_DIR (not set)"
    return DownloadError(
        f"could not download {name} from {url}: {reason}. longrec looked in {where} and in the cache "
        f"({cache_dir()}) first. Without network, get {name}.zip on another machine, unzip it and pass "
        f"the folder, e.g. load_dataset('/path/to/{name}'), or set LONGREC_DATA_DIR to a folder that "
        f"contains {name}/."
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch(name: str, url: str, dest: Path, timeout: float) -> str:
    """Stream url to dest (via a .part file); return the sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + f".{os.getpid()}.part")
    h = hashlib.sha256()
    try:
        with _open_url(url, timeout) as resp, open(part, "wb") as out:
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                h.update(chunk)
                out.write(chunk)
        os.replace(part, dest)
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as e:
        part.unlink(missing_ok=True)
        raise _offline_help(name, url, getattr(e, "reason", None) and str(e.reason) or str(e)) from None
    return h.hexdigest()


def _verify(name: str, archive: Path, digest: str) -> None:
    sidecar = archive.with_name(archive.name + ".sha256")
    expected = KNOWN_SHA256.get(name) or (sidecar.read_text().split()[0] if sidecar.exists() else None)
    if expected is None:
        sidecar.write_text(f"{digest}  {archive.name}\n")
    elif expected != digest:
        raise DownloadError(
            f"{archive}: sha256 {digest} does not match the recorded {expected}; the archive is corrupt "
            f"or was replaced. Delete {archive} and {sidecar.name} and load the dataset again to re-download it.")


def _extract(name: str, archive: Path, target: Path) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                for m in zf.namelist():
                    if m.startswith(("/", "\\")) or ".." in Path(m).parts:
                        raise DownloadError(f"{archive}: unsafe path {m!r} in the archive; not extracting it.")
                zf.extractall(tmp)
        except zipfile.BadZipFile as e:
            raise DownloadError(f"{archive}: not a valid zip file ({e}). Delete it and load the dataset again.") from None
        entries = [p for p in tmp.iterdir() if not p.name.startswith(("__MACOSX", "."))]
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
        try:
            os.rename(root, target)
        except OSError:
            if not target.is_dir():  # someone else finished first: theirs is as good as ours
                raise
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download_dataset(name: str, cache: Path | None = None, timeout: float = TIMEOUT_S) -> Path:
    """Fetch (if needed), verify and extract a MovieLens archive; return its folder."""
    if name not in URLS:
        raise DownloadError(f"no download is known for {name!r}; known: {', '.join(URLS)}. Pass a local "
                            "path to load_dataset instead.")
    root = Path(cache) if cache is not None else cache_dir()
    target = root / name
    if target.is_dir():
        return target
    archive = root / "downloads" / f"{name}.zip"
    digest = _sha256(archive) if archive.exists() else _fetch(name, URLS[name], archive, timeout)
    _verify(name, archive, digest)
    return _extract(name, archive, target)
