"""Names and places: the kernel's name, the runtime directory and the state directory.

Files in the runtime directory (the connection file with the operator secret, the lock)
are reached only through a descriptor of that directory, opened without following
symlinks and checked (:func:`open_private_dir`): a symlink swapped in after a check
cannot redirect what is read or written.

What a client needs (its kernel's name and connection file) is worked out with
:mod:`os.path`, spelt as :mod:`pathlib` spells it: a client never imports pathlib.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import stat
from typing import TYPE_CHECKING

from kos_core.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path
    from typing import TypeAlias

    #: a path as a string, or as a :class:`pathlib.Path`
    StrPath: TypeAlias = str | os.PathLike[str]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_name(name: str, what: str) -> str:
    """Return ``name`` if it is a valid kernel or plugin name, else raise :class:`UsageError`."""
    if not _NAME.match(name):
        raise UsageError(
            f"bad {what} name {name!r}: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def kernel_name(explicit: str | None = None) -> str:
    """The kernel name: ``explicit``, else ``$KOS_KERNEL``, else the short host name."""
    name = explicit or os.environ.get("KOS_KERNEL") or socket.gethostname().split(".")[0]
    return check_name(name or "localhost", "kernel")


def spelt(path: StrPath) -> str:
    """``path`` as ``str(pathlib.Path(path))`` spells it: no empty or ``.`` parts, no
    ``/`` at the end (``..`` stays: it may follow a symlink).
    """
    text = os.fspath(path)
    root = "//" if text[:2] == "//" and text[2:3] != "/" else "/" if text[:1] == "/" else ""
    return root + "/".join(p for p in text.split("/") if p not in ("", ".")) or "."


def _parent(path: str) -> str:
    """The directory holding ``path`` (spelt), as ``Path.parent`` has it."""
    return os.path.dirname(path) or "."


def _runtime(create: bool = True) -> str:
    if env := os.environ.get("KOS_RUNTIME_DIR"):
        path = spelt(env)
    elif xdg := os.environ.get("XDG_RUNTIME_DIR"):
        path = spelt(f"{xdg}/kos")
    else:
        path = f"/tmp/kos-{os.getuid()}"
    if create:
        os.close(open_private_dir(path))
    return path


def runtime_dir(create: bool = True) -> Path:
    """Where sockets and the kernel's connection file live (created ``0700``).

    ``$KOS_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/kos``, else ``/tmp/kos-$UID``.
    With ``create``, it is made if missing and checked without following symlinks
    (see :func:`open_private_dir`).
    """
    from pathlib import Path

    return Path(_runtime(create))


def open_private_dir(path: StrPath) -> int:
    """Make ``path`` (``0700``) if it is missing; return a file descriptor of it.

    The directory is opened without following a symlink and checked through that
    descriptor, so what is checked is what is used: it must be a directory (not a
    symlink), owned by this user, mode ``0700``, in a parent that other users cannot
    rename entries of. Anything else raises :class:`UsageError` saying what to fix.
    """
    path = spelt(path)
    try:
        parent_fd = os.open(_existing(_parent(path)), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(f"cannot make the runtime directory {path}: {exc.strerror}") from None
    try:
        _check_parent(_parent(path), os.fstat(parent_fd))
        created = _mkdir_at(path, parent_fd)
        try:
            fd = os.open(os.path.basename(path), _DIR_FLAGS, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UsageError(_not_a_directory(path, parent_fd)) from None
            raise UsageError(f"cannot open the runtime directory {path}: {exc.strerror}") from None
    finally:
        os.close(parent_fd)
    try:
        info = os.fstat(fd)
        if created and stat.S_IMODE(info.st_mode) != 0o700:  # a umask took bits away
            os.fchmod(fd, 0o700)
            info = os.fstat(fd)
        _check_private_dir(path, info)
    except BaseException:
        os.close(fd)
        raise
    return fd


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _existing(path: str) -> str:
    """``path``, made (with its parents) if it is missing."""
    os.makedirs(path, exist_ok=True)
    return path


def _mkdir_at(path: str, parent_fd: int) -> bool:
    try:
        os.mkdir(os.path.basename(path), 0o700, dir_fd=parent_fd)
    except FileExistsError:
        return False
    except OSError as exc:
        raise UsageError(f"cannot make the runtime directory {path}: {exc.strerror}") from None
    return True


def _check_parent(parent: str, info: os.stat_result) -> None:
    # Whoever may rename entries of the parent could swap the directory for another
    # after it was checked: only this user and root may, unless the sticky bit is set.
    if info.st_uid not in (0, os.getuid()):
        fix = f"it belongs to uid {info.st_uid}; set KOS_RUNTIME_DIR to a place of yours"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
        fix = f"fix it with: chmod go-w {parent}"
    else:
        return
    raise UsageError(f"the runtime directory's parent {parent} may be changed by others; {fix}")


def _not_a_directory(path: str, parent_fd: int) -> str:
    if stat.S_ISLNK(os.lstat(os.path.basename(path), dir_fd=parent_fd).st_mode):
        return (
            f"runtime directory {path} is a symlink; remove it (rm {path}) or set KOS_RUNTIME_DIR"
        )
    return f"runtime directory {path} is not a directory; remove it or set KOS_RUNTIME_DIR"


def _check_private_dir(path: str, info: os.stat_result) -> None:
    if info.st_uid != os.getuid():
        raise UsageError(
            f"runtime directory {path} belongs to uid {info.st_uid}, not to you"
            f" (uid {os.getuid()}); remove it or set KOS_RUNTIME_DIR"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode != 0o700:
        raise UsageError(
            f"runtime directory {path} has mode {mode:04o}, not 0700; fix it with: chmod 700 {path}"
        )


def state_dir(kernel: str) -> Path:
    """The kernel's state directory (plugins' working directories live below it).

    ``$KOS_STATE_DIR/<kernel>``, else ``$XDG_STATE_HOME/kos/<kernel>``,
    else ``~/.local/state/kos/<kernel>``.
    """
    from pathlib import Path

    if env := os.environ.get("KOS_STATE_DIR"):
        base = Path(env)
    elif xdg := os.environ.get("XDG_STATE_HOME"):
        base = Path(xdg) / "kos"
    else:
        base = Path.home() / ".local" / "state" / "kos"
    return base / kernel


def connection_file(kernel: str) -> str:
    """The kernel's connection file: address, pid, protocol version and the run's secret
    (a string, as :func:`spelt` spells it: clients read it).
    """
    return spelt(os.path.join(_runtime(), f"{kernel}.kernel.json"))


def tls_file(kernel: str) -> Path:
    """The certificate and key a kernel alone serves TCP with (its run's, ``0600``)."""
    return runtime_dir() / f"{kernel}.tls.pem"


def open_private_file(path: StrPath, flags: int, mode: int = 0o600) -> int:
    """A descriptor of ``path`` (a file in the runtime directory) opened with ``flags``.

    Opened relative to the checked directory (:func:`open_private_dir`) with
    ``O_NOFOLLOW`` (and ``O_NONBLOCK``, so a planted FIFO cannot hang the caller), then
    checked through the descriptor: a symlink, or anything but a regular file owned by
    this user, raises :class:`UsageError`. A missing file raises ``FileNotFoundError``
    unless ``flags`` holds ``O_CREAT`` (it is then made with ``mode``).
    """
    path = spelt(path)
    dir_fd = open_private_dir(_parent(path))
    try:
        flags |= os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(os.path.basename(path), flags, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UsageError(f"{path} is a symlink; remove it (rm {path})") from None
        raise
    finally:
        os.close(dir_fd)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        os.close(fd)
        raise UsageError(f"{path} is not a regular file of yours; remove it (rm {path})")
    return fd


def read_private_file(path: StrPath, limit: int = 1 << 20) -> bytes:
    """The first ``limit`` bytes of ``path``, opened as :func:`open_private_file` does.

    Raises ``FileNotFoundError`` if there is no such file.
    """
    with os.fdopen(open_private_file(path, os.O_RDONLY), "rb") as fh:
        return fh.read(limit)


def write_private_file(path: StrPath, data: bytes) -> None:
    """Replace ``path`` (a file in the runtime directory) with ``data``, atomically, mode ``0600``.

    The bytes go to a temporary file beside it, created with ``O_CREAT | O_EXCL |
    O_NOFOLLOW`` relative to the checked directory, which is then renamed into place
    relative to the same descriptor. Whatever was planted at the temporary name (a
    symlink to somewhere else, say) is removed, never followed.
    """
    path = spelt(path)
    name = os.path.basename(path)
    dir_fd = open_private_dir(_parent(path))
    tmp = f"{name}.tmp{os.getpid()}"
    try:
        fd = _create_new(tmp, dir_fd)
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o600)
                fh.write(data)
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
    finally:
        os.close(dir_fd)


def _create_new(name: str, dir_fd: int) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(name, flags, 0o600, dir_fd=dir_fd)
    except FileExistsError:
        os.unlink(name, dir_fd=dir_fd)  # removes a symlink itself, not what it names
        return os.open(name, flags, 0o600, dir_fd=dir_fd)


def plugin_dir(state: Path, plugin: str) -> Path:
    """Plugin ``plugin``'s own directory under a kernel's state directory ``state``: its
    working directory when the kernel starts it, for files it keeps between runs.
    """
    return state / "plugins" / plugin


def make_private_dir(path: Path) -> Path:
    """Make ``path`` and its missing parents with mode ``0700``; tighten ``path`` to ``0700``.

    For the state and log directories: they hold plugins' files and tracebacks.
    """
    missing: list[Path] = []
    here = path
    while not here.exists():
        missing.append(here)
        here = here.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        path.chmod(0o700)
    return path
