"""Files in a workspace that lives on the host, opened without trusting its contents.

Sandboxed code owns the workspace and may plant symlinks, FIFOs or deep trees in it,
so the host (often root) walks it one component at a time with O_NOFOLLOW and
O_NONBLOCK and only ever reads or writes regular files.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator

from gantry.envfarm.sandbox.base import SandboxError

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@contextlib.contextmanager
def _parent_dir(root: str, relative: str, *, create: bool, owner: int | None) -> Iterator[int]:
    """An fd of the directory holding `relative`'s last component, walked without symlinks."""
    parts = relative.split("/")
    fd = os.open(root, _DIR)
    try:
        for part in parts[:-1]:
            try:
                next_fd = os.open(part, _DIR, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                next_fd = os.open(part, _DIR, dir_fd=fd)
                if owner is not None:
                    os.fchown(next_fd, owner, owner)
            os.close(fd)
            fd = next_fd
        yield fd
    except NotADirectoryError as exc:
        raise SandboxError(f"{relative!r}: a parent is not a directory") from exc
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: a symlink where a directory was expected
            raise SandboxError(f"{relative!r}: a parent is a symlink") from exc
        raise
    finally:
        os.close(fd)


def write_file(
    root: str, relative: str, data: bytes, mode: int, *, owner: int | None, limit: int
) -> None:
    if len(data) > limit:
        raise SandboxError(f"{relative!r} is {len(data)} bytes; the file size limit is {limit}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        with _parent_dir(root, relative, create=True, owner=owner) as parent:
            fd = os.open(relative.rsplit("/", 1)[-1], flags, mode & 0o777, dir_fd=parent)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise SandboxError(f"{relative!r} exists and is not a regular file")
                os.ftruncate(fd, 0)
                if owner is not None:
                    os.fchown(fd, owner, owner)
                os.fchmod(fd, mode & 0o777)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
    except SandboxError:
        raise
    except OSError as exc:
        raise SandboxError(f"cannot write {relative!r}: {exc.strerror}") from exc


def read_file(root: str, relative: str, max_bytes: int) -> bytes:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        with _parent_dir(root, relative, create=False, owner=None) as parent:
            fd = os.open(relative.rsplit("/", 1)[-1], flags, dir_fd=parent)
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    raise SandboxError(f"{relative!r} is not a regular file")
                if info.st_size > max_bytes:
                    raise SandboxError(
                        f"{relative!r} is {info.st_size} bytes; at most {max_bytes} may be read"
                    )
                chunks, size = [], 0
                while chunk := os.read(fd, max_bytes + 1 - size):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > max_bytes:
                        raise SandboxError(f"{relative!r} grew past {max_bytes} bytes")
                return b"".join(chunks)
            finally:
                os.close(fd)
    except SandboxError:
        raise
    except FileNotFoundError as exc:
        raise SandboxError(f"{relative!r} does not exist") from exc
    except OSError as exc:
        raise SandboxError(f"cannot read {relative!r}: {exc.strerror}") from exc
