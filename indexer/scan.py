"""Find the audio files of a library: recursive, sorted, one stat per file.

Hidden names (starting with '.') are skipped, as file managers and music players do.
Symbolic links are followed (people link music folders in) but each real directory is
walked once, so link loops end. A folder that cannot be read is recorded and the scan goes
on: one unreadable folder must not stop a whole library from being indexed.
"""

from __future__ import annotations

import os
import stat as stat_module
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable


@dataclass(frozen=True)
class FileEntry:
    """An audio file as the diff sees it: absolute resolved path, size, modification time."""

    path: str
    size: int
    mtime_ns: int

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.path, self.size, self.mtime_ns)


@dataclass
class SkippedFile:
    path: str
    reason: str


@dataclass
class ScanResult:
    files: list[FileEntry] = field(default_factory=list)
    errors: list[SkippedFile] = field(default_factory=list)


def normalise_extensions(extensions: Iterable[str]) -> frozenset[str]:
    """'.WAV', 'wav' → '.wav'; the match is case-insensitive."""
    if isinstance(extensions, str):
        raise TypeError("extensions must be a collection of suffixes such as {'.wav', '.flac'}, not one string")
    normalised = frozenset("." + ext.lower().lstrip(".") for ext in extensions if ext and ext.strip("."))
    if not normalised:
        raise ValueError("no audio file extensions given to scan for")
    return normalised


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def scan_library(root: str | os.PathLike, extensions: Iterable[str]) -> ScanResult:
    """All files under ``root`` (a folder, or one file) whose extension is in ``extensions``.

    Returns files sorted by path, and the folders/files that could not be read with why.
    """
    wanted = normalise_extensions(extensions)
    root_path = os.path.realpath(os.path.expanduser(os.fspath(root)))
    try:
        root_stat = os.stat(root_path)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file or folder: {os.fspath(root)}") from None
    except OSError as error:
        raise OSError(f"cannot read {os.fspath(root)}: {_reason(error)}") from None

    result = ScanResult()
    if not stat_module.S_ISDIR(root_stat.st_mode):
        # A single file named by the user: its extension decides, hidden or not.
        if os.path.splitext(root_path)[1].lower() in wanted:
            result.files.append(FileEntry(root_path, root_stat.st_size, root_stat.st_mtime_ns))
        else:
            result.errors.append(SkippedFile(root_path, "not an audio file extension"))
        return result

    seen_dirs = {(root_stat.st_dev, root_stat.st_ino)}
    seen_files: set[str] = set()
    pending = [root_path]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except OSError as error:
            result.errors.append(SkippedFile(directory, f"cannot read folder: {_reason(error)}"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_link = entry.is_symlink()
                if entry.is_dir():  # follows links
                    if is_link:
                        target = os.path.realpath(entry.path)
                        info = os.stat(target)
                    else:
                        target, info = entry.path, entry.stat(follow_symlinks=False)
                    inode = (info.st_dev, info.st_ino)
                    if inode not in seen_dirs:
                        seen_dirs.add(inode)
                        pending.append(target)
                    continue
                if os.path.splitext(entry.name)[1].lower() not in wanted:
                    continue
                if not entry.is_file():
                    if is_link and not os.path.exists(entry.path):
                        result.errors.append(SkippedFile(entry.path, "broken symbolic link"))
                    continue
                path = os.path.realpath(entry.path) if is_link else entry.path
                info = entry.stat()
            except OSError as error:
                result.errors.append(SkippedFile(entry.path, f"cannot read: {_reason(error)}"))
                continue
            if path not in seen_files:  # a file linked in twice is indexed once
                seen_files.add(path)
                result.files.append(FileEntry(path, info.st_size, info.st_mtime_ns))
    result.files.sort(key=lambda f: f.path)
    result.errors.sort(key=lambda s: s.path)
    return result


def is_under(path: str, root: str | Path) -> bool:
    """Whether ``path`` is ``root`` or inside it (both absolute)."""
    root_text = os.fspath(root).rstrip(os.sep) or os.sep
    return path == root_text or path.startswith(root_text if root_text == os.sep else root_text + os.sep)
