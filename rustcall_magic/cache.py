"""The on-disk compile cache: key, locate, lock, publish atomically, verify, evict.

Layout under the cache root (created ``0700``)::

    entries/<key>/meta.json        what was built (functions, checksum, options, ...)
    entries/<key>/<module>.so      the artifact (a CPython extension module)
    entries/<key>/hits             one byte appended per cache hit
    locks/<key>.lock               per-key file lock: one build per key across processes
    tmp/                           builds in progress and entries being removed
    toolchain.json                 remembered ``rustc -vV`` (see toolchain.py)

An entry is published by renaming a complete directory into ``entries/``, so
readers see all of it or nothing. Its last use is the directory's mtime,
touched on every hit. Loading runs the artifact's code, so a root or entry
owned by another user, writable by group/others, or a symlink is refused.
Unreadable or foreign metadata is a miss, never a crash.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RustCacheError

META = "meta.json"
HITS = "hits"
#: Bumped when the entry layout or metadata format changes.
FORMAT = 1


def default_cache_dir() -> Path:
    """``$RUSTCALL_CACHE_DIR`` if set, else the platform's user cache dir for rustcall_magic."""
    env = os.environ.get("RUSTCALL_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("rustcall_magic", appauthor=False))


def make_key(parts: dict[str, Any]) -> str:
    """Hash of everything that shapes an artifact (a JSON-able mapping)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Entry:
    """One published cache entry."""

    key: str
    path: Path
    meta: dict[str, Any]

    @property
    def artifact(self) -> Path:
        """Path of the built module file."""
        return self.path / str(self.meta["artifact"])

    @property
    def module_name(self) -> str:
        """Python module name the artifact initialises as."""
        return str(self.meta["module"])

    @property
    def size(self) -> int:
        """Bytes used by the entry's files."""
        total = 0
        try:
            with os.scandir(self.path) as it:
                for e in it:
                    if e.is_file(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
        except OSError:
            pass
        return total

    @property
    def last_used(self) -> float:
        """Time of the last build or hit (the entry directory's mtime)."""
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    @property
    def created(self) -> float:
        """Time the entry was built."""
        return float(self.meta.get("created", 0.0))

    @property
    def hits(self) -> int:
        """How many times the entry was loaded from the cache."""
        try:
            return (self.path / HITS).stat().st_size
        except OSError:
            return 0

    @property
    def function_names(self) -> list[str]:
        """Names of the exported functions."""
        return [f["name"] for f in self.meta.get("functions", [])]


class Cache:
    """A compile cache rooted at *root* (see the module docstring for the layout)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().absolute()
        self.entries_dir = self.root / "entries"
        self.locks_dir = self.root / "locks"
        self.tmp_dir = self.root / "tmp"
        self._ready = False

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r})"

    # -- safety -----------------------------------------------------------------

    def ensure(self) -> None:
        """Create the cache directories (private) and check they are safe to load from.

        Raises RustCacheError when a directory belongs to another user, is
        writable by group or others, is a symlink, or cannot be created.
        """
        if self._ready:
            self._check_dir(self.root)  # cheap: one lstat per compile
            return
        try:
            if not os.path.lexists(self.root):
                old = os.umask(0o077)
                try:
                    os.makedirs(self.root, mode=0o700, exist_ok=True)
                finally:
                    os.umask(old)
            self._check_dir(self.root)
            for d in (self.entries_dir, self.locks_dir, self.tmp_dir):
                if not os.path.lexists(d):
                    os.makedirs(d, mode=0o700, exist_ok=True)
                self._check_dir(d)
        except RustCacheError:
            raise
        except OSError as e:
            raise RustCacheError(f"cannot use cache directory {self.root}: {e}") from e
        self._ready = True

    @staticmethod
    def _check_dir(path: Path) -> None:
        try:
            st = os.lstat(path)
        except OSError as e:
            raise RustCacheError(f"cannot use cache directory {path}: {e}") from e
        _check_safe(path, st, "cache directory")

    # -- locating -----------------------------------------------------------------

    def entry_path(self, key: str) -> Path:
        """Where the entry for *key* lives (whether or not it exists)."""
        return self.entries_dir / key

    def lookup(self, key: str) -> Entry | None:
        """The published entry for *key*, or None on a miss (absent or unreadable metadata).

        Raises RustCacheError for an unsafe entry (symlink, foreign, writable by others).
        """
        path = self.entry_path(key)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise RustCacheError(f"cannot read cache entry {path}: {e}") from e
        _check_safe(path, st, "cache entry")
        return self._read_entry(key, path)

    @staticmethod
    def _read_entry(key: str, path: Path) -> Entry | None:
        try:
            meta = json.loads((path / META).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("key") != key:
            return None
        if not isinstance(meta.get("artifact"), str) or "/" in meta["artifact"]:
            return None
        return Entry(key, path, meta)

    def entries(self) -> Iterator[Entry]:
        """Every readable, safe entry (unsafe or unreadable ones are skipped)."""
        try:
            names = sorted(os.listdir(self.entries_dir))
        except OSError:
            return
        for name in names:
            try:
                entry = self.lookup(name)
            except RustCacheError:
                continue
            if entry is not None:
                yield entry

    def unreadable(self) -> list[Path]:
        """Entry directories whose metadata cannot be read (candidates for eviction)."""
        out = []
        try:
            names = sorted(os.listdir(self.entries_dir))
        except OSError:
            return []
        for name in names:
            path = self.entry_path(name)
            if os.path.isdir(path) and not os.path.islink(path) and self._read_entry(name, path) is None:
                out.append(path)
        return out

    # -- integrity ------------------------------------------------------------------

    def verify(self, entry: Entry) -> str | None:
        """None when the artifact matches its recorded size and checksum, else what is wrong."""
        art = entry.artifact
        try:
            st = os.lstat(art)
        except OSError:
            return "artifact is missing"
        if not stat.S_ISREG(st.st_mode):
            return "artifact is not a regular file"
        if st.st_size != entry.meta.get("size"):
            return f"artifact size is {st.st_size}, expected {entry.meta.get('size')}"
        try:
            digest = file_sha256(art)
        except OSError as e:
            return f"artifact cannot be read: {e}"
        if digest != entry.meta.get("sha256"):
            return "artifact checksum does not match"
        return None

    # -- building and publishing ----------------------------------------------------

    def lock(self, key: str, timeout: float = 600.0) -> Any:
        """A cross-process lock for building *key* (a filelock.FileLock context manager)."""
        from filelock import FileLock

        return FileLock(str(self.locks_dir / f"{key}.lock"), timeout=timeout)

    def new_build_dir(self, key: str) -> Path:
        """A fresh private directory to build *key* in."""
        path = self.tmp_dir / f"build-{key[:16]}-{uuid.uuid4().hex[:12]}"
        try:
            path.mkdir(mode=0o700)
        except OSError as e:
            raise RustCacheError(f"cannot create a build directory in {self.tmp_dir}: {e}") from e
        return path

    def publish(self, key: str, build_dir: Path, artifact: Path, meta: dict[str, Any]) -> Entry:
        """Turn *build_dir* (holding *artifact*) into the entry for *key*, atomically.

        An existing entry for *key* (a forced rebuild, a corrupt entry) is
        replaced as a whole; processes that loaded its artifact keep their
        mapping. Raises RustCacheError on disk errors, leaving nothing
        half-published.
        """
        meta = dict(meta)
        try:
            meta.update(
                format=FORMAT,
                key=key,
                artifact=artifact.name,
                size=artifact.stat().st_size,
                sha256=file_sha256(artifact),
                created=time.time(),
            )
            tmp_meta = build_dir / (META + ".tmp")
            with open(tmp_meta, "w", encoding="utf-8") as f:
                json.dump(meta, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_meta, build_dir / META)
            with open(artifact, "rb") as f:
                os.fsync(f.fileno())
            dest = self.entry_path(key)
            if os.path.lexists(dest):
                self._discard(dest)
            os.rename(build_dir, dest)
        except OSError as e:
            shutil.rmtree(build_dir, ignore_errors=True)
            raise RustCacheError(f"could not write cache entry for {key[:16]} in {self.root}: {e}") from e
        return Entry(key, dest, meta)

    def touch(self, entry: Entry) -> None:
        """Record a hit: bump the entry's mtime (its last use) and its hit count."""
        try:
            fd = os.open(entry.path / HITS, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, b".")
            finally:
                os.close(fd)
            os.utime(entry.path)
        except OSError:
            pass  # a read-only cache still serves hits

    def evict(self, entry: Entry | Path) -> bool:
        """Remove an entry (moved out of ``entries/`` first, so no reader sees half of it)."""
        path = entry.path if isinstance(entry, Entry) else entry
        if not os.path.lexists(path):
            return False
        try:
            self._discard(path)
        except OSError as e:
            raise RustCacheError(f"could not remove cache entry {path}: {e}") from e
        return True

    def _discard(self, path: Path) -> None:
        trash = self.tmp_dir / f"trash-{path.name[:16]}-{uuid.uuid4().hex[:12]}"
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def total_size(self) -> int:
        """Bytes used by all entries."""
        return sum(e.size for e in self.entries())


def _check_safe(path: Path, st: os.stat_result, what: str) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise RustCacheError(f"refusing {what} {path}: it is a symlink (loading it could run code from elsewhere)")
    if not stat.S_ISDIR(st.st_mode):
        raise RustCacheError(f"refusing {what} {path}: not a directory")
    uid = os.getuid()
    if st.st_uid != uid:
        raise RustCacheError(
            f"refusing {what} {path}: owned by uid {st.st_uid}, not by you (uid {uid}); "
            "loading it would run someone else's code"
        )
    if st.st_mode & 0o022:
        raise RustCacheError(
            f"refusing {what} {path}: writable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
            f"run `chmod go-w {path}` if you trust its contents"
        )
