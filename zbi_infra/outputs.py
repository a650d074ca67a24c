"""Where zbi commands write (`plan --out DIR`, `roles --write --file FILE`): checked before anything is computed or
written, so a file or directory in the way, or one that cannot be written, is a message naming the flag and the fix
(exit 2), not a traceback after half the output."""

from __future__ import annotations

import os
from pathlib import Path

from zbi_infra.errors import ConfigError

OUTPUT = "output path"


def _writable(directory: Path, flag: str) -> None:
    """`directory`, or the nearest ancestor that exists (mkdir creates the rest), must be a writable directory."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError([f"{flag} {directory}: {existing} is a file, not a directory. Fix: choose another path"])
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError([f"{flag} {directory}: {existing} is not writable. Fix: choose a directory you can write"])


def check_output_directory(out: Path, *, flag: str, children: dict[str, bool]) -> None:
    """`out` will hold `children` (name -> is a directory): none may be in the way."""
    if out.exists() and not out.is_dir():
        raise ConfigError([f"{flag} {out}: a file is in the way. Fix: give a directory (it is created if missing)"])
    _writable(out, flag)
    for name, is_directory in children.items():
        child = out / name
        if child.exists() and child.is_dir() != is_directory:
            what = "a directory" if child.is_dir() else "a file"
            raise ConfigError([f"{flag} {out}: {child} is {what} in the way. Fix: move it, or choose another {flag}"])


def check_output_file(path: Path, *, flag: str) -> str:
    """A text file zbi rewrites in place: its current text ('' if none), after checking it can be written."""
    if path.is_dir():
        raise ConfigError([f"{flag} {path}: a directory, not a file. Fix: name the file itself"])
    _writable(path.parent, flag)
    if not path.exists():
        return ""
    if not path.is_file():  # a device or a pipe would be read forever
        raise ConfigError([f"{flag} {path}: not a regular file. Fix: name the file itself"])
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError([f"{flag} {path}: cannot be read ({exc.strerror}). Fix: check its permissions"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{flag} {path}: not UTF-8 text. Fix: save it as UTF-8, or choose another file"]) from None
