"""Attacks before the handshake, against a real kernel: slow connections, running out
of file descriptors, a burst of connects (docs/design-notes.md, "Wire and security").

Each test prints the figures it measured (``pytest -s``).
"""

from __future__ import annotations

import errno
import resource
import socket

from attack_helpers import Loris, cpu_seconds, open_fds, threads_of, timed_answer
from kos_core._net import wire
from kos_core.testing import KernelProcess, KosEnv
from kos_helpers import connection_info

#: a legitimate client must be answered within this many seconds during every attack
ANSWER_WITHIN = 1.0
#: threads a kernel may add while it is attacked: the 64 pending handshakes, the threads
#: of connections just cut that have not yet woken to close them (more of them on a busy
#: machine), and a margin; without the cap it would be one per connection (300)
THREAD_MARGIN = 120


def kernel_address(kos_env: KosEnv) -> wire.Address:
    return wire.Address.parse(connection_info(kos_env)["address"])


def answers_during(loris: Loris, ticks: int, pid: int) -> tuple[list[float], int]:
    """A legitimate client's answer time after each of ``ticks`` ticks of the attack,
    and the most threads the kernel ran meanwhile.
    """
    answers: list[float] = []
    most = 0
    for _ in range(ticks):
        loris.wait_ticks(1)
        most = max(most, threads_of(pid))
        answers.append(timed_answer())
        most = max(most, threads_of(pid))
    return answers, most


def test_slow_connections_neither_starve_clients_nor_add_threads(
    kos_env: KosEnv, bb_kernel: KernelProcess
) -> None:
    """300 connections trickling an opening line at one byte a second (longer than the
    handshake deadline): the kernel keeps answering and its threads stay bounded.
    """
    pid = bb_kernel.pid
    before = threads_of(pid)
    with Loris(kernel_address(kos_env), 300) as loris:
        loris.wait_ticks(1)
        answers, most = answers_during(loris, 7, pid)
    print(
        f"\n300 slow connections: kernel threads {before} -> at most {most};"
        f" legitimate answers {', '.join(f'{a * 1000:.0f}' for a in answers)} ms;"
        f" {loris.opened} opened, {loris.cut} closed by the kernel"
    )
    assert max(answers) <= ANSWER_WITHIN, answers
    assert most <= before + THREAD_MARGIN, (before, most)
    # the kernel hangs up on connections past the deadline (7 s > 5 s) or past the cap
    assert loris.cut >= 200, loris.cut
    assert bb_kernel.process.poll() is None


def test_out_of_file_descriptors_no_spin_and_clients_answered(
    kos_env: KosEnv, bb_kernel: KernelProcess
) -> None:
    """A kernel left with a few spare file descriptors, flooded with 250 slow
    connections: accept() fails with EMFILE; the kernel neither spins nor stops answering.
    """
    pid = bb_kernel.pid
    plugin = bb_kernel.wait_plugin("bitbucket", services=["bitbucket"])
    limit = open_fds(pid) + 24
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
    cpu_before = cpu_seconds(pid)
    with Loris(kernel_address(kos_env), 250) as loris:
        loris.wait_ticks(1)
        start_ticks = loris.ticks
        answers, most = answers_during(loris, 4, pid)
        ticks = loris.ticks - start_ticks
    cpu = cpu_seconds(pid) - cpu_before
    print(
        f"\nEMFILE (limit {limit}, 250 slow connections): kernel CPU {cpu:.2f} s over"
        f" {ticks + 1} s, threads at most {most}; legitimate answers"
        f" {', '.join(f'{a * 1000:.0f}' for a in answers)} ms"
    )
    assert max(answers) <= ANSWER_WITHIN, answers
    assert cpu <= 0.3 * (ticks + 1), f"the kernel used {cpu:.2f} s of CPU: it spins"
    assert "out of file descriptors" in bb_kernel.log()
    assert bb_kernel.process.poll() is None
    # The kernel's own shortage is not held against its plugins: none was restarted.
    row = bb_kernel.plugin_row("bitbucket")
    assert row is not None and (row[1], row[2]) == ("running", plugin), row


def test_a_burst_of_connects_leaves_room_for_the_next_client(
    kos_env: KosEnv, bb_kernel: KernelProcess
) -> None:
    """200 connects in a burst, faster than anyone accepts them: none is refused for a
    full listen backlog, and the next client is answered at once.
    """
    path = kernel_address(kos_env).path
    assert path is not None
    held: list[socket.socket] = []
    full = 0
    try:
        for _ in range(200):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(path)
            except BlockingIOError as exc:
                assert exc.errno == errno.EAGAIN
                full += 1
                sock.close()
                continue
            held.append(sock)
        answer = timed_answer()
    finally:
        for sock in held:
            sock.close()
    print(f"\nburst of 200 connects: {full} refused (backlog full); next client {answer:.3f} s")
    assert full == 0
    assert answer <= ANSWER_WITHIN
