"""Confinement by the operating system, applied by a KP's process to itself.

It is applied before any of the KP's code runs (Linux only), in this order:

1. a network namespace of its own (no interface at all, not even loopback; the Unix
   sockets of its station are files and stay reachable);
2. when the kernel runs as root, a user id of its own (``setresuid``) with no
   capabilities left, keeping file-system uid 0 so that it can still reach its
   station's sockets in the 0700 runtime directory (Landlock decides what else);
3. ``setrlimit``: CPU seconds, address space, tasks (processes and threads of its
   user id), open files, file size, no core files;
4. ``PR_SET_NO_NEW_PRIVS`` and a Landlock domain: read and execute the Python
   installation (the directories of ``sys.path``), read and write its own working
   directory, nothing else; no TCP bind or connect (ABI 4); no abstract Unix
   sockets and no signals outside the domain (ABI 6).

:func:`probe` tells the station whether this machine can do it; :func:`apply` does
it and returns one line saying what was applied, or raises :class:`CannotConfine`.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
_PR_SET_NO_NEW_PRIVS, _PR_SET_KEEPCAPS, _PR_CAPBSET_DROP = 38, 8, 24
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000
_CAP_SETUID = 7
_CAPABILITY_VERSION_3 = 0x20080522

# Landlock file-system rights, and the ABI that introduced the last ones
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FILE_RIGHTS = {1: 0b111, 3: 0b111 | 1 << 14, 5: 0b111 | 1 << 14 | 1 << 15}
_ALL_RIGHTS = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1

#: system places every Python needs to read (shared libraries and their cache)
_SYSTEM_READ = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/etc/ld.so.cache")
_DEVICES = ("/dev/null", "/dev/urandom", "/dev/zero")
#: the first uid of the range a root kernel gives its KPs (one each, at random)
KP_UID_BASE = 1_900_000_000
KP_UID_SPAN = 100_000_000


class CannotConfine(Exception):
    """The machine cannot apply a confinement the station requires."""


@dataclass(frozen=True)
class Plan:
    """What to apply to one KP process."""

    workdir: str
    cpu: int  # seconds
    mem: int  # MiB of address space
    tasks: int  # processes and threads
    files: int  # open files
    fsize: int  # MiB, the largest file it may write
    uid: int  # its own uid (a root kernel), else 0: keep the kernel's
    deny: tuple[str, ...] = ()  # never readable, even below a Python directory


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _syscall(number: int, *args: int | bytes | None) -> int:
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    values = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return int(libc.syscall(ctypes.c_long(number), *values))


def landlock_abi() -> int:
    """The Landlock ABI version the kernel offers, 0 if none."""
    if not sys.platform.startswith("linux"):
        return 0
    return max(0, _syscall(_SYS_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION))


def probe(min_abi: int = 1) -> str | None:
    """Why this machine cannot confine a KP (with Landlock ABI ``min_abi`` or later),
    or ``None`` if it can.
    """
    if not sys.platform.startswith("linux"):
        return f"KPs are confined with Landlock, which {sys.platform} does not have"
    abi = landlock_abi()
    if abi < 1:
        return "Landlock is not available (Linux 5.13 or later, with landlock in the LSM list)"
    if abi < min_abi:
        return f"Landlock ABI {abi} is older than the {min_abi} this station requires"
    if abi < 4 and os.geteuid() != 0:
        return f"Landlock ABI {abi} has no network rules (ABI 4, Linux 6.7, is needed)"
    return None


def apply(plan: Plan) -> str:
    """Confine this process as ``plan`` says; return what was applied (one line).

    Raises :class:`CannotConfine` if a required part fails; the caller must then
    end the process without running the KP.
    """
    abi = landlock_abi()
    if abi < 1:
        raise CannotConfine(probe() or "Landlock is not available")
    applied = [f"landlock ABI {abi}"]
    if _own_network():
        applied.append("netns")
    elif abi < 4:
        raise CannotConfine("neither a network namespace nor Landlock network rules (ABI 4)")
    tasks = plan.tasks
    if plan.uid:
        _become(plan.uid)
        applied.append(f"uid {plan.uid}")
    else:
        tasks += _tasks_of(os.getuid())  # RLIMIT_NPROC counts every task of this uid
    _limit(plan, tasks)
    applied.append(f"cpu {plan.cpu}s, mem {plan.mem} MiB, tasks {plan.tasks}, files {plan.files}")
    _landlock(abi, plan)
    return "confined: " + ", ".join(applied)


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise CannotConfine(f"{what}: {os.strerror(err)}")
    return result


def _own_network() -> bool:
    """Enter a network namespace of its own (a user namespace too when not root)."""
    libc = _libc()
    if os.geteuid() == 0:
        return bool(libc.unshare(_CLONE_NEWNET) == 0)
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        return False
    try:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    except OSError as exc:
        raise CannotConfine(f"cannot map ids in the KP's user namespace: {exc}") from None
    return True


def _capset(bits: int) -> None:
    header = struct.pack("II", _CAPABILITY_VERSION_3, 0)
    data = struct.pack("6I", bits, bits, 0, 0, 0, 0)  # effective, permitted, inheritable x2
    _check(_libc().capset(header, data), "capset")


def _become(uid: int) -> None:
    """Run as ``uid`` with no capabilities, keeping file-system uid 0."""
    libc = _libc()
    for cap in range(64):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == errno.EINVAL:
            break  # past the last capability this kernel knows
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    _check(libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0), "PR_SET_KEEPCAPS")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    _capset(1 << _CAP_SETUID)
    libc.setfsuid(0)
    if libc.setfsuid(-1) != 0:  # -1 changes nothing and returns the current one
        raise CannotConfine("cannot keep file-system uid 0 after changing uid")
    _capset(0)
    libc.prctl(_PR_SET_KEEPCAPS, 0, 0, 0, 0)


def _tasks_of(uid: int) -> int:
    """How many tasks (threads included) ``uid`` runs now."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            count += int(fields.get("Threads", "1"))
    return count


def _limit(plan: Plan, tasks: int) -> None:
    mib = 1024 * 1024
    limits = [
        (resource.RLIMIT_CPU, plan.cpu, plan.cpu + 1),  # SIGXCPU, then SIGKILL
        (resource.RLIMIT_AS, plan.mem * mib, plan.mem * mib),
        (resource.RLIMIT_NPROC, tasks, tasks),
        (resource.RLIMIT_NOFILE, plan.files, plan.files),
        (resource.RLIMIT_FSIZE, plan.fsize * mib, plan.fsize * mib),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    for which, soft, hard in limits:
        try:
            resource.setrlimit(which, (soft, hard))
        except (OSError, ValueError) as exc:
            raise CannotConfine(f"setrlimit: {exc}") from None


def read_paths(deny: Iterable[str]) -> list[str]:
    """What the KP may read and execute: the Python installation (``sys.path`` and the
    prefixes) and the system's shared libraries, minus every directory that holds one
    of ``deny`` (the runtime and state directories).
    """
    denied = [os.path.realpath(d) for d in deny]
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path, *_SYSTEM_READ]
    found: list[str] = []
    for path in candidates:
        if not path or not os.path.exists(path):
            continue
        real = os.path.realpath(path)
        if any(d == real or d.startswith(real.rstrip("/") + "/") for d in denied):
            continue  # reading it would reach the runtime or state directory
        if real not in found:
            found.append(real)
    return found


def _landlock(abi: int, plan: Plan) -> None:
    fs_rights = _ALL_RIGHTS[max(k for k in _ALL_RIGHTS if k <= abi)]
    file_rights = _FILE_RIGHTS[max(k for k in _FILE_RIGHTS if k <= abi)]
    net = _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 else 0
    scoped = _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("QQQ", fs_rights, net, scoped)
    ruleset = _check(_syscall(_SYS_CREATE_RULESET, attr, len(attr), 0), "landlock_create_ruleset")
    try:
        for path in read_paths(plan.deny):
            _allow(ruleset, path, _EXECUTE | _READ_FILE | _READ_DIR, file_rights)
        for path in _DEVICES:
            _allow(ruleset, path, _READ_FILE | _WRITE_FILE, file_rights)
        _allow(ruleset, plan.workdir, fs_rights, file_rights)
        _check(_libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
        _check(_syscall(_SYS_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)


def _allow(ruleset: int, path: str, rights: int, file_rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # not on this machine: nothing to allow
    try:
        if not os.path.isdir(path):
            rights &= file_rights
        rule = struct.pack("=Qi", rights, fd)
        _check(_syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, rule, 0), f"landlock {path}")
    finally:
        os.close(fd)
