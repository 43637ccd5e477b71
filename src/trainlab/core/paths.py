"""What a command-line string names on disk, asked without letting the operating system's refusal escape.

    path_kind("photos/")        # 'dir'
    path_kind("a" * 300)        # None: no file can have that name (over 255 bytes), so it is not a path
    not_utf8("caf\udce9")       # True: the argument held bytes that are not UTF-8 (Python's surrogateescape)

`trainlab predict RUN TEXT...` tries each argument as a path first; a text longer than a file name may be,
or holding a NUL byte, must be taken as text instead of stopping the command with "File name too long".
"""
from __future__ import annotations

from pathlib import Path


def path_kind(item: str | Path) -> str | None:
    """'dir' or 'file' when `item` names one; None when it names nothing, or nothing it could name
    (empty, a NUL byte, a component over the OS's limit, a loop of links, no permission to look)."""
    text = str(item)
    if not text or "\0" in text:
        return None
    try:
        p = Path(text)
        return "dir" if p.is_dir() else "file" if p.is_file() else None
    except (OSError, ValueError):
        return None


def exists(item: str | Path) -> bool:
    text = str(item)
    if not text or "\0" in text:
        return False
    try:
        return Path(text).exists()
    except (OSError, ValueError):
        return False


def not_utf8(text: str) -> bool:
    """Command-line bytes that are not UTF-8 reach Python as lone surrogates (PEP 383)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def short_path(path) -> str:
    """A path for a one-line message: whole up to 80 characters, else its head and tail around '...'."""
    s = str(path)
    return s if len(s) <= 80 else s[:40] + "..." + s[-30:]


def shown(text: str, limit: int = 40) -> str:
    """`text` quoted for a message: escaped where it is not printable or not UTF-8, cut to `limit` characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit - 3] + "...")
