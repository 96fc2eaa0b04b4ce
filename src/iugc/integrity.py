"""Stamps: what each job consumed and produced, so a result can be checked against its sources.

Every stage writes its outputs into one folder and, last, ``stamp.json`` in it: the job
(stage and wildcards), the parameter values it read, the digest of every input it consumed
and the SHA-256 of every file it wrote. From the stamps alone one can tell, for any result:

- whether it is damaged (a file differs from the one written, or is missing);
- whether it is stale (an input it was made from is gone or has changed since);
- whether it was made under the parameters that are in force now.

The stage runner checks the stamps of a job's inputs before the job uses them; the workflow
checks every stamp before Snakemake plans (so a damaged or stale result is rebuilt); the report
stage checks the whole chain before it writes the report.

Digests: a stamped folder is summarised by the SHA-256 of its ``stamp.json`` (which holds the
hashes of all its files); a file by the SHA-256 of its bytes; an unstamped folder (a user's data
tree) by its file list with sizes and modification times (a cheap fingerprint; the data
manifest records the content hashes of the frames it indexes).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Mapping

from .errors import UserError

STAMP_FILE = "stamp.json"
_CHUNK = 1 << 20


class HashCache:
    """SHA-256 of files keyed by (path, size, mtime, inode): a file is read again only after it
    changed. ``path`` (optional) persists the cache between processes as JSON."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else None
        self.entries: dict[str, list] = {}
        if self.path and self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self.entries = {}
        self.changed = False

    def sha256(self, path: str | Path) -> str:
        path = Path(path)
        stat = path.stat()
        key = str(path.resolve())
        signature = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
        cached = self.entries.get(key)
        if cached and cached[:3] == signature:
            return cached[3]
        digest = file_sha256(path)
        self.entries[key] = [*signature, digest]
        self.changed = True
        return digest

    def save(self) -> None:
        if self.path and self.changed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.entries))
            os.replace(tmp, self.path)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    """Files under ``folder`` that a stage wrote: not the stamp, not hidden files (Snakemake puts
    ``.snakemake_timestamp`` into folder outputs)."""
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.name != STAMP_FILE
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def digest(path: str | Path, cache: HashCache | None = None) -> str:
    """The digest a consumer records for one of its inputs (see the module docstring)."""
    path = Path(path)
    sha = (cache or HashCache()).sha256
    if path.is_file():
        return "sha256:" + sha(path)
    if (path / STAMP_FILE).is_file():
        return "stamp:" + sha(path / STAMP_FILE)
    if path.is_dir():
        listing = hashlib.sha256()
        for file in _files(path):
            stat = file.stat()
            listing.update(f"{file.relative_to(path).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return "tree:" + listing.hexdigest()
    raise FileNotFoundError(path)


def write_stamp(folder: str | Path, record: Mapping, inputs: Mapping[str, str],
                files: Iterable[str] | None = None) -> dict:
    """Write ``folder/stamp.json``: ``record`` (job, params, seconds, ...), the digests of the
    ``inputs`` (name -> path) and the SHA-256 of every file in ``folder`` (or of ``files``,
    paths relative to it, for a job that shares its folder). Atomic, and last."""
    folder = Path(folder)
    written = _files(folder) if files is None else sorted(folder / name for name in files)
    stamp = {
        **record,
        "inputs": {str(path): digest(path) for path in _unique(inputs.values())},
        "files": {file.relative_to(folder).as_posix(): file_sha256(file) for file in written},
    }
    tmp = folder / f".{STAMP_FILE}.tmp"
    tmp.write_text(json.dumps(stamp, indent=1, sort_keys=True, default=str) + "\n")
    os.replace(tmp, folder / STAMP_FILE)
    return stamp


def _unique(paths: Iterable) -> list[str]:
    out = []
    for item in paths:
        for path in (item if isinstance(item, (list, tuple)) else [item]):
            if path is not None and str(path) not in out:
                out.append(str(path))
    return out


def read_stamp(folder: str | Path) -> dict | None:
    path = Path(folder) / STAMP_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        raise UserError(f"{path}: not a readable stamp; delete {folder} to rebuild it") from None


def damage(folder: str | Path, stamp: Mapping, cache: HashCache | None = None) -> str | None:
    """Why the files of ``folder`` are not those its stamp records, or None."""
    folder = Path(folder)
    cache = cache or HashCache()
    for name, expected in stamp["files"].items():
        file = folder / name
        if not file.is_file():
            return f"{file} is missing"
        if cache.sha256(file) != expected:
            return f"{file} is damaged (its checksum differs from the one recorded when it was written)"
    return None


def staleness(stamp: Mapping, cache: HashCache | None = None) -> str | None:
    """Which input of a stamped job is gone or changed since the job ran, or None."""
    cache = cache or HashCache()
    for path, recorded in stamp["inputs"].items():
        try:
            current = digest(path, cache)
        except FileNotFoundError:
            return f"it was made from {path}, which is missing"
        if current != recorded:
            return f"it was made from another version of {path}"
    return None


def find_stamps(roots: Iterable[str | Path]) -> list[Path]:
    """Folders holding a stamp under ``roots`` (the study's output folders)."""
    found = []
    for root in roots:
        root = Path(root)
        if root.is_dir():
            found += [p.parent for p in root.rglob(STAMP_FILE)]
    return sorted(found)
