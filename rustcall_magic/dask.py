"""Run cell functions on Dask workers that have no Rust toolchain: ``rc.dask.register(client)``.

Cell functions pickle by reference (their cell's recipe: source, options and
cache key); a worker loads the cell from its own cache with no rustc.
:func:`register` puts the compiled artifacts there: a Dask worker plugin per
cache entry (each cell this process has loaded, and the ownership runtime when
loaded) carries the artifact's bytes and metadata, and installs them into the
cache of every present and future worker. A worker checks each artifact's
SHA-256 against its recorded digest and refuses one that does not match, as
it refuses a corrupt cache entry; a task that needs a refused or missing cell
fails with RustToolchainError saying so. Cells compiled after :func:`register`
are sent as they load.

Dask is imported here only: the rest of rustcall_magic does not need it.
Workers on other machines need builds that run there: compile with
``target_cpu="portable"`` (a ``native`` build is only loaded on a CPU like the
one that built it).
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from pathlib import Path
from typing import Any

from distributed import Client, WorkerPlugin

from . import compiler
from .cache import Cache, Entry, default_cache_dir
from .errors import RustCacheError

__all__ = ["ArtifactPlugin", "register", "unregister"]

#: Plugin names start with this, then the entry's cache key.
PREFIX = "rustcall-artifact-"


class ArtifactPlugin(WorkerPlugin):
    """A worker plugin installing one cache entry (artifact bytes and metadata) into the worker's cache."""

    def __init__(self, key: str, meta: dict[str, Any], data: bytes) -> None:
        self.key = key
        self.meta = dict(meta)
        self.data = data
        self.name = PREFIX + key

    @classmethod
    def from_entry(cls, entry: Entry) -> ArtifactPlugin:
        """The plugin of *entry*, its artifact read now."""
        return cls(entry.key, entry.meta, entry.artifact.read_bytes())

    def setup(self, worker: Any = None) -> None:
        """Install the artifact unless the worker's cache has it; refuse it when its SHA-256 does not match."""
        compiler.defer_unpickle_errors = True
        digest = hashlib.sha256(self.data).hexdigest()
        if digest != self.meta.get("sha256") or len(self.data) != self.meta.get("size"):
            compiler.refused_artifacts[self.key] = (
                f"its SHA-256 is {digest[:16]}..., the entry recorded {str(self.meta.get('sha256'))[:16]}... "
                "(corrupt or tampered with)"
            )
            return
        install(Cache(default_cache_dir()), self.key, self.meta, self.data)


def install(cache: Cache, key: str, meta: dict[str, Any], data: bytes) -> Entry:
    """Publish *data* (an artifact whose digest was checked) as entry *key* of *cache*, unless a sound one exists."""
    cache.ensure()
    entry = cache.valid_entry(key)
    if entry is not None:
        return entry
    with cache.locked(key):
        entry = cache.valid_entry(key, repair=True)
        if entry is not None:
            return entry

        def build(build_dir: Path) -> tuple[Path, dict[str, Any]]:
            try:
                name = str(meta.get("artifact") or f"{meta.get('module', 'artifact')}.so")
                artifact = build_dir / name
                artifact.write_bytes(data)
            except OSError as e:
                raise RustCacheError(f"cannot write the artifact of {key[:12]} into {build_dir}: {e}") from e
            return artifact, meta  # publish records the artifact's own name, size, digest and time

        return cache.build_entry(key, build)


_lock = threading.Lock()
#: Clients that get the cells compiled from now on (weakly held).
_following: weakref.WeakSet[Client] = weakref.WeakSet()
#: Client -> names of the plugins registered on it.
_sent: weakref.WeakKeyDictionary[Client, set[str]] = weakref.WeakKeyDictionary()


def _send(client: Client, entries: list[Entry]) -> list[str]:
    sent = _sent.setdefault(client, set())
    names = []
    for entry in entries:
        name = PREFIX + entry.key
        if name in sent:
            continue
        try:
            plugin = ArtifactPlugin.from_entry(entry)
        except OSError:
            continue  # the entry was evicted (or its cache removed) since it loaded: nothing to send
        client.register_plugin(plugin, name=name)
        sent.add(name)
        names.append(name)
    return names


def _on_load(entry: Entry) -> None:
    with _lock:
        clients = list(_following)
    for client in clients:
        if client.status in ("closing", "closed"):
            _following.discard(client)
            continue
        _send(client, [entry])


def register(client: Client, *, follow: bool = True) -> list[str]:
    """Install the artifacts of the cells this process has loaded on every worker of *client*, now and later.

    Each becomes a worker plugin (named ``rustcall-artifact-<cache key>``), so
    workers that join later get them too. With *follow* (the default) every
    cell loaded from now on is sent as well. Returns the names of the plugins
    registered by this call.
    """
    if not isinstance(client, Client):
        raise TypeError(f"client must be a distributed.Client, not {type(client).__name__}")
    with _lock:
        if follow:
            _following.add(client)
            if _on_load not in compiler.entry_listeners:
                compiler.entry_listeners.append(_on_load)
    # The runtime is among the loaded entries once loaded (it registers its entry like a cell).
    return _send(client, compiler.loaded_entries())


def unregister(client: Client) -> None:
    """Stop sending cells loaded from now on to *client*'s workers (what was sent stays installed)."""
    with _lock:
        _following.discard(client)
        if not _following and _on_load in compiler.entry_listeners:
            compiler.entry_listeners.remove(_on_load)
