"""Files that stay true: written whole or not at all, sealed with a checksum, locked by one
process. Standard library only, and no job-folder names (those are ``jobdir``'s)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import struct
from contextlib import suppress
from pathlib import Path
from typing import Any

# A sealed file ends in this trailer: a magic, the length of the JSON metadata before it, and
# the SHA-256 of the payload, the metadata and that length (a changed length must not move
# the line between payload and metadata unnoticed).
TRAILER = struct.Struct(">8sQ32s")
LENGTH = struct.Struct(">Q")
MAGIC = b"SPPOSHA1"


class Corrupt(ValueError):
    """A sealed file whose bytes do not match its checksum."""


class Busy(Exception):
    """Another process holds the lock; the message is what it wrote about itself."""


# The one call that puts a file's bytes on disk: tests inject a full disk here.
_write = os.write


def write_atomic(path: Path, data: bytes) -> None:
    """Write beside ``path``, fsync, rename over it, sync the folder: a kill, a full disk or
    a power cut at any moment leaves the previous file or the new one, never part of one.
    Every failure is an OSError: the bytes are all made before the disk is touched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A hidden name that the folder's next owner recognises as a killed write's leftover.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[_write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with suppress(OSError):  # some file systems cannot sync a folder; the rename stands
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def sealed(payload: bytes, meta: dict[str, Any]) -> bytes:
    """``payload``, its metadata as JSON, and the trailer that lets a reader verify both."""
    info = json.dumps(meta).encode()
    digest = hashlib.sha256(payload)
    digest.update(info)
    digest.update(LENGTH.pack(len(info)))
    return b"".join((payload, info, TRAILER.pack(MAGIC, len(info), digest.digest())))


def unsealed(data: bytes) -> tuple[bytes | memoryview, dict[str, Any] | None]:
    """(payload, metadata) of a sealed file's bytes, or (data, None) for a file without a seal
    (sharedppo's checkpoints before layout 3). Raises Corrupt if any bit has changed."""
    end = len(data) - TRAILER.size
    if end < 0 or data[end : end + len(MAGIC)] != MAGIC:
        return data, None
    _, size, digest = TRAILER.unpack_from(data, end)
    if size > end:
        raise Corrupt("its trailer is damaged")
    body = memoryview(data)[:end]
    check = hashlib.sha256(body)
    check.update(LENGTH.pack(size))
    if check.digest() != digest:
        raise Corrupt("its bytes do not match their SHA-256")
    return body[: end - size], json.loads(bytes(body[end - size :]))


_LOCKS: set[int] = set()  # descriptors of the locks this process holds


def lock(path: Path, note: str) -> int:
    """An exclusive flock() on ``path`` (created if missing), taken without waiting; ``note``
    (who holds it) is written into the file for whoever is refused. The OS drops the lock
    when the process ends, however it ends. Raises Busy with the holder's note if another
    process holds it, OSError if the file cannot be opened or locked."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 256, 0).decode(errors="replace").strip()
        os.close(fd)
        raise Busy(holder or "another process") from None
    except BaseException:
        os.close(fd)
        raise
    with suppress(OSError):  # the note is a courtesy: a full disk must not stop the run
        os.ftruncate(fd, 0)
        os.pwrite(fd, note.encode(), 0)
    _LOCKS.add(fd)
    return fd


def unlock(fd: int) -> None:
    _LOCKS.discard(fd)
    os.close(fd)


def _forget_locks() -> None:
    """In a forked child (an env worker): close its copies of the lock files, so that a lock
    ends with the process that took it, not with the last of its children."""
    for fd in _LOCKS:
        with suppress(OSError):
            os.close(fd)
    _LOCKS.clear()


os.register_at_fork(after_in_child=_forget_locks)


def process_running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not ended (a zombie has: Linux's /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return False
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
