"""Round-trip YAML for the files zBI edits in place (stack files, access files): comments, key order, quoting and
layout survive an edit, one editor at a time holds the file, and the result replaces the file in one step, keeping
its mode, owner and symbolic links."""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedSeq

from zbi_infra.errors import ConfigError

# How long a second editor waits for the first: edits take well under a second, so a minute means a stuck process.
LOCK_WAIT_SECONDS = 60.0
EDITED_FILE = "file to edit"


def round_trip_yaml(*, width: int | None = None) -> YAML:
    handler = YAML()  # round trip: comments and key order are kept
    handler.preserve_quotes = True
    if width is not None:
        handler.width = width
    handler.indent(mapping=2, sequence=4, offset=2)
    return handler


def dump(document: Any, *, width: int | None = None) -> str:
    buffer = io.StringIO()
    round_trip_yaml(width=width).dump(document, buffer)
    return buffer.getvalue()


def flow_list(values: list[str]) -> CommentedSeq:
    """A list written on one line, `[a, b]`, as people write method and host lists."""
    seq = CommentedSeq(values)
    seq.fa.set_flow_style()
    return seq


def edited_path(path: Path) -> Path:
    """The file an edit of `path` changes: a symbolic link is written through, to the file it points at."""
    return Path(os.path.realpath(path))


def lock_path(path: Path) -> Path:
    target = edited_path(path)
    return target.with_name(f".{target.name}.lock")


@contextmanager
def locked(path: Path, *, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """Hold `path` for one read-modify-write: an exclusive flock on a sidecar `.<name>.lock` (the file itself is
    replaced by each edit, so it cannot carry the lock). A second editor says it waits, and gives up after `wait`."""
    target = edited_path(path)
    if target.exists() and not target.is_file():
        raise ConfigError([f"{path}: not a regular file. Fix: point it at the file to edit"], what=EDITED_FILE)
    sidecar = lock_path(path)
    try:
        descriptor = os.open(sidecar, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise ConfigError(
            [
                f"{sidecar}: cannot open the lock file ({exc.strerror}). Fix: make {sidecar.parent} writable, or move "
                f"what is in the way at {sidecar.name}"
            ],
            what=EDITED_FILE,
        ) from None
    try:
        _acquire(descriptor, path, sidecar, wait)
        yield
    finally:
        os.close(descriptor)  # closing the descriptor releases the lock


def _acquire(descriptor: int, path: Path, sidecar: Path, wait: float) -> None:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        print(f"waiting: another zbi command is editing {path} (lock {sidecar.name})", file=sys.stderr)
    deadline = time.monotonic() + wait
    while True:
        time.sleep(0.05)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise ConfigError(
                    [f"{path}: another zbi command has held its lock {sidecar.name} for {wait:.0f} s; nothing was "
                     f"written. Fix: let it finish and run again, or stop the stuck process (fuser {sidecar})"],
                    what=EDITED_FILE,
                ) from None  # fmt: skip


def replace_file(path: Path, text: str) -> None:
    """Write `text` beside the file, then rename it over the file: a reader never sees half a file. The new file
    keeps the old one's mode and owner; a symbolic link stays a link (its target is replaced). A read-only file is
    refused: its mode says it must not change."""
    target = edited_path(path)
    try:
        before: os.stat_result | None = target.stat()
    except FileNotFoundError:
        before = None
    if before is not None and not stat.S_ISREG(before.st_mode):
        raise ConfigError([f"{path}: not a regular file. Fix: point it at the file to edit"], what=EDITED_FILE)
    if before is not None and not before.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            [f"{path}: the file is read-only (mode {stat.filemode(before.st_mode)}); nothing was written. "
             f"Fix: chmod u+w {path} if it may change"],
            what=EDITED_FILE,
        )  # fmt: skip
    try:
        descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(
            [f"{target.parent}: cannot write a temporary file there ({exc.strerror}); nothing was written. "
             f"Fix: make {target.parent} writable"],
            what=EDITED_FILE,
        ) from None  # fmt: skip
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(text.encode())
            handle.flush()
            os.fsync(handle.fileno())
        if before is not None:
            temporary.chmod(stat.S_IMODE(before.st_mode))
            if (before.st_uid, before.st_gid) != (os.geteuid(), os.getegid()):
                # An unprivileged user cannot give a file away: it becomes theirs, as any editor's save would make it.
                with contextlib.suppress(PermissionError):
                    os.chown(temporary, before.st_uid, before.st_gid)
        else:
            umask = os.umask(0)
            os.umask(umask)
            temporary.chmod(0o666 & ~umask)
        temporary.replace(target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigError(
            [f"{path}: cannot be replaced ({exc.strerror}); nothing was written. Fix: check {target.parent}"],
            what=EDITED_FILE,
        ) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
