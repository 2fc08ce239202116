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

import contextlib
import hashlib
import json
import os
import shutil
import stat
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import RustCacheError, RustcallWarning

META = "meta.json"
HITS = "hits"
#: The artifact's identity (size, times, inode, checksum) when its checksum last matched.
SEAL = "verified"
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
        """Names of the exported functions (and of the generic struct instances it holds, ``W<i32>``)."""
        return [f["name"] for f in self.meta.get("functions", [])] + list(self.meta.get("type_instances", []))


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
            # Cheap (four lstat calls), and a directory made writable to others meanwhile is refused.
            for d in (self.root, self.entries_dir, self.locks_dir, self.tmp_dir):
                self._check_dir(d)
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
        return Entry(key, path, meta) if _meta_is_sound(meta) else None

    def _scan(self) -> Iterator[tuple[Path, Entry | None, str | None]]:
        """Each name in ``entries/``: (path, its entry or None, why it is refused or None)."""
        try:
            names = sorted(os.listdir(self.entries_dir))
        except OSError:
            return
        for name in names:
            try:
                yield self.entry_path(name), self.lookup(name), None
            except RustCacheError as e:
                yield self.entry_path(name), None, str(e)

    def entries(self) -> Iterator[Entry]:
        """Every readable, safe entry (unsafe or unreadable ones are skipped)."""
        return (entry for _, entry, _ in self._scan() if entry is not None)

    def unreadable(self) -> list[Path]:
        """Entry directories whose metadata cannot be read (candidates for eviction)."""
        return [path for path, entry, why in self._scan() if entry is None and why is None and os.path.isdir(path)]

    def refused(self) -> list[tuple[Path, str]]:
        """Entries no process may load (a symlink, another user's, writable by others), with why."""
        return [(path, why) for path, _, why in self._scan() if why is not None]

    # -- integrity ------------------------------------------------------------------

    def verify(self, entry: Entry, *, full: bool = False) -> str | None:
        """None when the artifact matches its recorded size and checksum, else what is wrong.

        The checksum is computed once per artifact file: when it matches, the
        file's identity (size, modification and change times, inode) is sealed
        in the entry, and later checks whose file still has that identity skip
        the hashing. Any write, truncation, replacement or chmod of the file
        changes its change time, which user code cannot set back. *full*
        always hashes (``%rustcache verify``).
        """
        art = entry.artifact
        try:
            st = os.lstat(art)
        except OSError:
            return "artifact is missing"
        if not stat.S_ISREG(st.st_mode):
            return "artifact is not a regular file"
        if st.st_size != entry.meta.get("size"):
            return f"artifact size is {st.st_size}, expected {entry.meta.get('size')}"
        seal = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}:{entry.meta.get('sha256')}".encode()
        seal_path = entry.path / SEAL
        if not full:
            try:
                with open(seal_path, "rb") as f:  # bytes: a text codec would be imported on a fresh process's hit
                    if f.read(256) == seal:
                        return None
            except OSError:
                pass
        try:
            digest = file_sha256(art)
        except OSError as e:
            return f"artifact cannot be read: {e}"
        if digest != entry.meta.get("sha256"):
            return "artifact checksum does not match"
        tmp = entry.path / f".{SEAL}.{os.getpid()}.{threading.get_ident()}"
        try:
            with open(tmp, "wb") as f:
                f.write(seal)
            os.replace(tmp, seal_path)
        except OSError:  # a read-only cache still verifies, by hashing every time
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return None

    def valid_entry(
        self, key: str, *, repair: bool = False, kind: str | None = None, what: str = "cache entry", stacklevel: int = 3
    ) -> Entry | None:
        """The entry for *key* if its artifact checks out (and its kind matches), else None.

        With *repair* -- only while holding the key's build lock -- a bad entry is
        reported with a RustcallWarning and evicted, so the caller rebuilds it.
        """
        entry = self.lookup(key)
        if entry is None or (kind is not None and entry.meta.get("kind", "cdylib") != kind):
            return None
        problem = self.verify(entry)
        if problem is None:
            return entry
        if repair:
            try:
                self.evict(entry)
            except RustCacheError as e:
                raise RustCacheError(f"{what} {key[:12]} is corrupt ({problem}) and cannot be removed: {e}") from e
            warnings.warn(
                f"{what} {key[:12]} is corrupt ({problem}); it was removed and will be rebuilt",
                RustcallWarning,
                stacklevel=stacklevel,
            )
        return None

    # -- building and publishing ----------------------------------------------------

    def lock(self, key: str, timeout: float = 600.0) -> Any:
        """A cross-process lock for building *key* (a filelock.FileLock context manager)."""
        from filelock import FileLock

        return FileLock(str(self.locks_dir / f"{key}.lock"), timeout=timeout)

    @contextlib.contextmanager
    def locked(self, key: str, timeout: float = 600.0) -> Iterator[None]:
        """Hold *key*'s build lock; waiting past *timeout* or a lock file that cannot be
        made (a read-only or full disk) is a RustCacheError."""
        lock = self.lock(key, timeout)
        try:
            lock.acquire()
        except TimeoutError as e:
            raise RustCacheError(
                f"waited {timeout:.0f} s for another process building the same cell ({lock.lock_file})"
            ) from e
        except OSError as e:
            raise RustCacheError(f"cannot lock cache entry {key[:16]} in {self.root}: {e}") from e
        try:
            yield
        finally:
            lock.release()

    def new_build_dir(self, key: str) -> Path:
        """A fresh private directory to build *key* in."""
        path = self.tmp_dir / f"build-{key[:16]}-{uuid.uuid4().hex[:12]}"
        try:
            path.mkdir(mode=0o700)
        except OSError as e:
            raise RustCacheError(f"cannot create a build directory in {self.tmp_dir}: {e}") from e
        return path

    def build_entry(self, key: str, build: Callable[[Path], tuple[Path, dict[str, Any]]]) -> Entry:
        """Publish the entry for *key* that *build* makes in a fresh build directory.

        *build* writes the artifact into the directory it is given and returns
        the artifact's path and the entry's metadata. The directory is removed
        when *build* or the publication fails.
        """
        build_dir = self.new_build_dir(key)
        try:
            artifact, meta = build(build_dir)
            return self.publish(key, build_dir, artifact, meta)
        except BaseException:
            shutil.rmtree(build_dir, ignore_errors=True)
            raise

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
        _notify(self.root, "publish", key)
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
            return  # a read-only cache still serves hits
        _notify(self.root, "hit", entry.key)

    def evict(self, entry: Entry | Path) -> bool:
        """Remove an entry (moved out of ``entries/`` first, so no reader sees half of it)."""
        path = entry.path if isinstance(entry, Entry) else entry
        if not os.path.lexists(path):
            return False
        try:
            self._discard(path)
        except OSError as e:
            raise RustCacheError(f"could not remove cache entry {path}: {e}") from e
        _notify(self.root, "evict", path.name)
        return True

    def _discard(self, path: Path) -> None:
        if os.path.islink(path):  # a planted link: remove the link, never what it points to
            os.unlink(path)
            return
        trash = self.tmp_dir / f"trash-{path.name[:16]}-{uuid.uuid4().hex[:12]}"
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def keys_of(self, paths: Collection[str]) -> set[str]:
        """Keys of this cache's entries that contain any of *paths* (e.g. loaded artifacts)."""
        root = str(self.entries_dir) + os.sep
        return {p[len(root) :].split(os.sep, 1)[0] for p in paths if p.startswith(root)}

    def total_size(self) -> int:
        """Bytes used by all entries."""
        return sum(e.size for e in self.entries())

    # -- housekeeping -------------------------------------------------------------

    def remove_where(self, doomed: Callable[[Entry], bool], keep: Collection[str] = ()) -> list[Entry]:
        """Evict every entry for which *doomed* is true, except those whose key is in *keep*.

        Each eviction takes the entry's build lock, so it never races a build of
        the same key; an entry being built (lock busy for 30 s) or vanishing
        meanwhile is skipped. Returns the evicted entries. Raises RustCacheError,
        after evicting what it could, when the disk refuses to remove some; its
        ``removed`` attribute lists the evicted ones.
        """
        removed: list[Entry] = []
        failed: list[str] = []
        for entry in list(self.entries()):
            if entry.key in keep or not doomed(entry):
                continue
            try:
                if self._evict_locked(
                    entry.key, lambda current, e=entry: current is not None and current.path == e.path
                ):
                    removed.append(entry)
            except TimeoutError:
                continue
            except (RustCacheError, OSError) as e:
                failed.append(str(e))
        if failed:
            err = RustCacheError(
                f"removed {len(removed)} cache entr{'y' if len(removed) == 1 else 'ies'}, but could not remove "
                f"{len(failed)}: {failed[0]}"
            )
            err.removed = removed  # type: ignore[attr-defined]
            raise err
        return removed

    def _evict_locked(self, key: str, still: Callable[[Entry | None], bool]) -> bool:
        """Under *key*'s build lock, evict its directory if it exists and *still* holds for its
        entry (None: its metadata is unreadable).

        Raises TimeoutError when the lock stays busy, RustCacheError/OSError from the disk.
        """
        with self.lock(key, timeout=30):
            path = self.entry_path(key)
            if not os.path.lexists(path) or not still(self.lookup(key)) or not self.evict(path):
                return False
            # At worst a process waiting on this file builds the key once more.
            with contextlib.suppress(OSError):
                os.unlink(self.locks_dir / f"{key}.lock")
            return True

    def clean_older_than(self, days: float, keep: Collection[str] = ()) -> list[Entry]:
        """Evict entries not used (built or hit) for more than *days* days; also leftovers (see ``clear``)."""
        if days < 0:
            raise ValueError(f"days must be >= 0, not {days}")
        cutoff = time.time() - days * 86400
        self._clean_leftovers()
        return self.remove_where(lambda e: e.last_used < cutoff, keep)

    def clear(self, keep: Collection[str] = ()) -> list[Entry]:
        """Evict every entry except those in *keep*, and the refused ones; also leftovers in ``tmp/``
        older than an hour. Raises RustCacheError when some cannot be removed (see :meth:`remove_where`)."""
        self._clean_leftovers()
        failed = [f"{path.name[:12]}: {err}" for path, _, err in self._remove_refused() if err]
        removed = self.remove_where(lambda e: True, keep)
        if failed:
            raise RustCacheError(
                f"could not remove {len(failed)} refused entr{'y' if len(failed) == 1 else 'ies'}: {failed[0]}"
            )
        return removed

    def _remove_refused(self) -> list[tuple[Path, str, str]]:
        """Remove the refused entries (never loadable): (path, why it was refused, why it could
        not be removed or "") for each."""
        out = []
        for path, why in self.refused():
            try:
                self.evict(path)
                out.append((path, why, ""))
            except RustCacheError as e:
                out.append((path, why, str(e)))
        return out

    def enforce_limit(self, max_bytes: int, keep: Collection[str] = ()) -> list[Entry]:
        """Evict least-recently-used entries until the cache holds at most *max_bytes* (0: no limit)."""
        if max_bytes <= 0:
            return []
        entries = sorted(self.entries(), key=lambda e: e.last_used)
        total = sum(e.size for e in entries)
        victims: set[str] = set()
        for e in entries:
            if total <= max_bytes:
                break
            if e.key in keep:
                continue
            victims.add(e.key)
            total -= e.size
        return self.remove_where(lambda e: e.key in victims, keep)

    def verify_all(self) -> tuple[int, list[tuple[str, str]]]:
        """Check every entry's checksum; evict bad ones, unreadable entry directories and refused entries.

        Returns (number of good entries, [(key, problem), ...] for each bad one); the
        problem of one the disk would not let go says so.
        """
        good = 0
        bad: list[tuple[str, str]] = []

        def evict(key: str, problem: str, still: Callable[[Entry | None], bool]) -> None:
            try:
                self._evict_locked(key, still)
                bad.append((key, problem))
            except TimeoutError:
                bad.append((key, f"{problem} (being rebuilt by another process)"))
            except (RustCacheError, OSError) as e:
                bad.append((key, f"{problem}; could not remove it: {e}"))

        for entry in list(self.entries()):
            problem = self.verify(entry, full=True)
            if problem is None:
                good += 1
            else:
                evict(
                    entry.key,
                    problem,
                    lambda cur, e=entry: (
                        cur is not None and cur.path == e.path and self.verify(cur, full=True) is not None
                    ),
                )
        for path in self.unreadable():
            evict(path.name, "metadata is unreadable", lambda cur: cur is None)
        for path, why, err in self._remove_refused():
            bad.append((path.name, f"{why}; could not remove it: {err}" if err else why))
        return good, bad

    def _clean_leftovers(self, age: float = 3600.0) -> None:
        """Remove what crashed builds left in ``tmp/`` and lock files of absent entries, if older than *age* s.

        Builds in progress live in ``tmp/`` too, hence the age: no build takes an hour.
        """
        cutoff = time.time() - age
        try:
            locks = os.listdir(self.locks_dir)
        except OSError:
            locks = []
        for name in locks:
            key = name.removesuffix(".lock")
            path = self.locks_dir / name
            try:
                if not os.path.lexists(self.entry_path(key)) and os.lstat(path).st_mtime < cutoff:
                    os.unlink(path)
            except OSError:
                continue
        try:
            names = os.listdir(self.tmp_dir)
        except OSError:
            return
        for name in names:
            path = self.tmp_dir / name
            try:
                if os.lstat(path).st_mtime < cutoff:
                    if os.path.isdir(path) and not os.path.islink(path):
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        os.unlink(path)
            except OSError:
                continue


def _meta_is_sound(meta: dict[str, Any]) -> bool:
    """True when every field a loader reads has the shape it expects (else the entry is a miss)."""
    from .errors import Diagnostic
    from .signature import FnSig

    try:
        artifact, module, kind = meta["artifact"], meta.get("module", ""), meta.get("kind", "cdylib")
        if not isinstance(artifact, str) or artifact in ("", ".", "..") or "/" in artifact or "\0" in artifact:
            return False
        if not isinstance(module, str) or not isinstance(kind, str) or (module and not module.isidentifier()):
            return False
        created, size, digest = meta.get("created", 0.0), meta.get("size"), meta.get("sha256")
        if isinstance(created, bool) or not isinstance(created, (int, float)) or not 0 <= created < 2.5e11:
            return False  # (NaN fails too) datetime cannot show a later time
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            return False
        if not isinstance(digest, str) or len(digest) != 64:
            return False
        for f in meta.get("functions", []):
            FnSig.from_json(f)
        for name, reason in meta.get("skipped", []):
            if not isinstance(name, str) or not isinstance(reason, str):
                return False
        for d in meta.get("warnings", []):
            Diagnostic(**d)
        for slot in meta.get("tls", []):
            if not isinstance(slot, list) or len(slot) != 4:
                return False
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
    return True


def _check_safe(path: Path, st: os.stat_result, what: str) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise RustCacheError(f"refusing {what} {path}: it is a symlink (loading it could run code from elsewhere)")
    if not stat.S_ISDIR(st.st_mode):
        raise RustCacheError(f"refusing {what} {path}: not a directory")
    uid = os.getuid()
    if st.st_uid != uid:
        remedy = "" if what == "cache directory" else "; `%rustcache clear` (rc.clear_cache()) removes it"
        raise RustCacheError(
            f"refusing {what} {path}: owned by uid {st.st_uid}, not by you (uid {uid}); "
            f"loading it would run someone else's code{remedy}"
        )
    if st.st_mode & 0o022:
        raise RustCacheError(
            f"refusing {what} {path}: writable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
            f"run `chmod go-w {path}` if you trust its contents"
        )


# ---------------------------------------------------------------------------
# Plain records for reports and views (text here; widgets render the same objects).


def human_size(n: float) -> str:
    """Bytes in human units (``1.5 MiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


@dataclass(frozen=True)
class CachedLibrary:
    """One cache entry as reported to users (``list_cached_libraries()``)."""

    key: str
    functions: tuple[str, ...]
    size: int
    created: datetime
    last_used: datetime
    hits: int
    path: Path
    kind: str = "cdylib"
    loaded: bool = False

    @classmethod
    def from_entry(cls, entry: Entry, loaded: bool = False) -> CachedLibrary:
        """The record of *entry*."""
        return cls(
            key=entry.key,
            functions=tuple(entry.function_names),
            size=entry.size,
            created=datetime.fromtimestamp(entry.created),
            last_used=datetime.fromtimestamp(entry.last_used),
            hits=entry.hits,
            path=entry.artifact,
            kind=str(entry.meta.get("kind", "cdylib")),
            loaded=loaded,
        )


@dataclass(frozen=True)
class CacheStats:
    """What is in a cache: its directory, entries (newest use first), total size and cap."""

    root: Path
    entries: tuple[CachedLibrary, ...]
    total_size: int
    max_bytes: int = 0
    #: (entry directory name, why) of each entry no process may load (see ``Cache.refused``).
    refused: tuple[tuple[str, str], ...] = ()

    def table(self) -> str:
        """One row per entry: key prefix, functions, size, created, last used, hits."""
        head = f"{'key':<12}  {'functions':<30}  {'size':>9}  {'created':<16}  {'last used':<16}  {'hits':>4}"
        rows = [head, "-" * len(head)]
        for e in self.entries:
            names = ", ".join(e.functions) or "-"
            if len(names) > 30:
                names = names[:27] + "..."
            mark = "*" if e.loaded else " "
            rows.append(
                f"{e.key[:11]}{mark}  {names:<30}  {human_size(e.size):>9}  "
                f"{e.created:%Y-%m-%d %H:%M}  {e.last_used:%Y-%m-%d %H:%M}  {e.hits:>4}"
            )
        if any(e.loaded for e in self.entries):
            rows.append("* loaded in this process")
        for name, why in self.refused:
            rows.append(f"refused {name[:12]}: {why}")
        return "\n".join(rows)

    def summary(self) -> str:
        """Directory, entry count and total size (against the cap, if any)."""
        cap = f" of {human_size(self.max_bytes)} cap" if self.max_bytes else ""
        n = len(self.entries)
        refused = f"; {len(self.refused)} refused (`%rustcache clear` removes them)" if self.refused else ""
        return f"rustcall cache {self.root}: {n} entr{'y' if n == 1 else 'ies'}, {human_size(self.total_size)}{cap}{refused}"

    def __str__(self) -> str:
        return f"{self.summary()}\n{self.table()}" if self.entries or self.refused else self.summary()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


# ---------------------------------------------------------------------------
# Change listeners: live views (the cache widget) follow publishes and evictions in this process.

#: Callables ``(cache root, "publish" | "evict" | "hit", key)``, called in the thread that changed the cache.
listeners: list[Callable[[Path, str, str], None]] = []


def _notify(root: Path, event: str, key: str) -> None:
    for callback in list(listeners):
        try:
            callback(root, event, key)
        except Exception:  # a broken view must never fail a compile or an eviction
            pass
