"""Addresses, string binding handles (SBHs) and the handshake that opens every kos connection.

An SBH names one object and carries the one credential that reaches it::

    kos+unix:///run/user/1000/kos/p4242.sock#<token>
    kos+tcp://127.0.0.1:7000#<token>
    kos+tcp://127.0.0.1:7000?kernel=A#<token>

The last names the kernel whose certificate the server must present (its subject's
common name): a world lookup hands out such SBHs, so that another kernel of the world
(whose certificate the same authority signed) cannot answer for the address. An SBH
without it accepts any certificate a trusted authority signed; a reader that predates
it ignores it.

Before rpyc speaks, the client sends ``KOS/<version> <token>\\n`` and the server answers
``OK KOS/<version>\\n`` or ``NO <reason>\\n`` and hangs up. Anything else is refused
without reaching rpyc, so stray or hostile bytes cost the server one short-lived thread.

A client waits for that answer before it sends more, unless the SBH says the server
reads a request *pipelined* behind the opening line (``kos+unix:///...?pipeline=1#...``,
a factory child's): then it sends its first request at once and reads the answer
before the reply. Such a server reads the opening line alone (peeking for its end)
and checks the token before a byte of the request is read; one that refuses never
reads it. A reader that predates the mark ignores it and waits for the answer, as
every other server still requires.
"""

from __future__ import annotations

import contextlib
import re
import socket
import sys
import time
from typing import TYPE_CHECKING, NamedTuple, TypeGuard

from kos_core.errors import AuthenticationFailed, ProtocolMismatch, UsageError

if TYPE_CHECKING:
    import ssl

PROTOCOL_VERSION = 1
#: seconds a server gives a new connection for its whole handshake (not per read)
HANDSHAKE_TIMEOUT = 5.0
#: pending connects a listener queues: room for a burst of clients
LISTEN_BACKLOG = min(socket.SOMAXCONN, 4096)
#: seconds a client goes on retrying a Unix-socket connect refused for a full backlog
CONNECT_RETRY = 1.0
#: the longest handshake line either side reads
MAX_LINE = 256
_MAX_UNIX_PATH = 107


class Address(NamedTuple):
    """Where a kos server listens: a Unix socket path, or a TCP host and port (and the
    kernel whose certificate the server there must present, if that is known).

    (A named tuple: every client makes this class, and a dataclass takes longer to make
    than the rest of this module.)
    """

    path: str | None = None
    host: str | None = None
    port: int = 0
    kernel: str | None = None
    #: the server reads a request pipelined behind the opening line (a Unix socket's)
    pipeline: bool = False

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse ``unix:/path``, ``/path``, ``tcp:HOST:PORT`` or ``HOST:PORT``."""
        if text.startswith(("unix:", "/")):
            path = text[5:] if text.startswith("unix:") else text
            if not path:
                raise UsageError(f"bad address {text!r}: unix: needs a socket path")
            return cls(path=path)
        rest = text[4:] if text.startswith("tcp:") else text
        host, sep, port = rest.rpartition(":")
        if not sep or not port.isdigit() or not host.strip("[]"):
            raise UsageError(f"bad address {text!r}: use HOST:PORT, tcp:HOST:PORT or unix:PATH")
        if not 0 <= int(port) <= 65535:
            raise UsageError(f"bad address {text!r}: port {port} is not between 0 and 65535")
        return cls(host=host.strip("[]"), port=int(port))

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"

    def connect(self, timeout: float) -> socket.socket:
        """Open a connected socket; raises ``OSError``.

        Over TCP (``TCP_NODELAY``) the socket speaks TLS 1.3 and the server's
        certificate has been checked against the authorities this process trusts
        (:func:`kos_core._net.tls.trust`): a server it cannot verify raises
        ``ssl.SSLCertVerificationError`` before anything is sent. With :attr:`kernel`,
        a certificate issued to another kernel raises :class:`AuthenticationFailed`.

        A Unix socket whose listen backlog is full refuses at once (``EAGAIN``); that
        is retried for up to :data:`CONNECT_RETRY` seconds.
        """
        if self.path is None:
            assert self.host is not None
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = _connected(family, (self.host, self.port), timeout)
            from kos_core._net import tls  # TCP only: a Unix-socket client never loads it

            try:
                secure = tls.client_context().wrap_socket(sock)
            except BaseException:
                sock.close()
                raise
            if self.kernel is not None:
                holder = tls.peer_name(secure)
                if holder != self.kernel:
                    secure.close()
                    raise AuthenticationFailed(
                        f"the server at {self} presented the certificate of kernel"
                        f" {holder!r}, not of kernel {self.kernel!r}"
                    )
            return secure
        give_up = time.monotonic() + min(CONNECT_RETRY, timeout)
        pause = 0.005
        while True:
            try:
                return _connected(socket.AF_UNIX, self.path, timeout)
            except BlockingIOError:
                if time.monotonic() + pause > give_up:
                    raise
            _retry_pause(pause)
            pause = min(2 * pause, 0.1)

    def listen(self) -> tuple[socket.socket, Address]:
        """Bind and listen; return the socket and the address actually bound (port 0 resolved)."""
        if self.path is not None:
            if len(self.path.encode()) > _MAX_UNIX_PATH:
                raise UsageError(
                    f"socket path too long ({len(self.path)} bytes, the limit is {_MAX_UNIX_PATH}):"
                    f" {self.path}; set KOS_RUNTIME_DIR to a shorter directory"
                )
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(self.path)
            except BaseException:
                sock.close()
                raise
            bound = self
        else:
            assert self.host is not None
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, self.port))
            except BaseException:
                sock.close()
                raise
            bound = Address(host=self.host, port=sock.getsockname()[1])
        sock.listen(LISTEN_BACKLOG)
        return sock, bound


def _connected(family: int, target: str | tuple[str, int], timeout: float) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        sock.connect(target)
    except BaseException:
        sock.close()
        raise
    return sock


def _retry_pause(seconds: float) -> None:
    time.sleep(seconds)


def is_tls(sock: socket.socket) -> TypeGuard[ssl.SSLSocket]:
    """Whether ``sock`` speaks TLS. Asked without importing :mod:`ssl` (a Unix-socket
    client never needs it): no TLS socket exists before something imported it.
    """
    tls = sys.modules.get("ssl")
    return tls is not None and isinstance(sock, tls.SSLSocket)


def timed_out(exc: OSError) -> bool:
    """Whether ``exc`` is a read that gave up at the socket's own timeout (``EAGAIN``,
    or TLS's ``SSLWantReadError``), asked as :func:`is_tls` asks.
    """
    tls = sys.modules.get("ssl")
    return isinstance(exc, BlockingIOError) or (
        tls is not None and isinstance(exc, tls.SSLWantReadError)
    )


def certificate_refused(exc: OSError) -> TypeGuard[ssl.SSLCertVerificationError]:
    """Whether ``exc`` is a TLS server's certificate failing verification, asked as
    :func:`is_tls` asks.
    """
    tls = sys.modules.get("ssl")
    return tls is not None and isinstance(exc, tls.SSLCertVerificationError)


def format_sbh(address: Address, token: str) -> str:
    """The SBH of the object that ``token`` names at ``address``."""
    from urllib.parse import quote  # SBHs are made by servers; a plain client never does

    if address.path is not None:
        pipeline = "?pipeline=1" if address.pipeline else ""
        return f"kos+unix://{quote(address.path)}{pipeline}#{token}"
    host = f"[{address.host}]" if address.host and ":" in address.host else address.host
    kernel = f"?kernel={quote(address.kernel, safe='')}" if address.kernel else ""
    return f"kos+tcp://{host}:{address.port}{kernel}#{token}"


def parse_sbh(sbh: str) -> tuple[Address, str]:
    """Split an SBH into its address and token; raises :class:`UsageError` if malformed."""
    plain = _PLAIN_UNIX_SBH.fullmatch(sbh)
    if plain is not None:  # what a server makes of most paths: nothing to unquote
        address, token = Address(path=plain[1]), plain[2]
    else:
        address, token = _parse_url(sbh)
    if not token or not token.isascii() or not token.replace("-", "").replace("_", "").isalnum():
        raise UsageError(f"string binding handle has no valid token: {sbh[:80]!r}")
    return address, token


#: a Unix SBH whose path has only characters ``quote`` leaves as they are
_PLAIN_UNIX_SBH = re.compile(r"kos\+unix://(/[A-Za-z0-9_.~/-]*)#([A-Za-z0-9_-]+)")


def _parse_url(sbh: str) -> tuple[Address, str]:
    from urllib.parse import parse_qs, unquote, urlsplit  # a plain Unix SBH needs none

    try:
        parts = urlsplit(sbh)
        token = parts.fragment
        if parts.scheme == "kos+unix" and parts.path.startswith("/") and not parts.netloc:
            pipeline = parse_qs(parts.query).get("pipeline", [""])[-1] == "1"
            address = Address(path=unquote(parts.path), pipeline=pipeline)
        elif parts.scheme == "kos+tcp" and parts.hostname and parts.port is not None:
            kernel = parse_qs(parts.query).get("kernel", [None])[-1]
            address = Address(host=parts.hostname, port=parts.port, kernel=kernel or None)
        else:
            raise ValueError(sbh)
    except ValueError:
        raise UsageError(f"not a kos string binding handle: {sbh[:80]!r}") from None
    return address, token


def client_handshake(sock: socket.socket, token: str, *, stream: bool = False) -> None:
    """Present ``token``; raise :class:`AuthenticationFailed` or :class:`ProtocolMismatch`.

    With ``stream``, bytes may follow the server's answer (a stream's, left unread).
    """
    send_opening(sock, token)
    read_answer(sock, leave_rest=stream)


def send_opening(sock: socket.socket, token: str) -> None:
    """Send the opening line that presents ``token`` (the first half of
    :func:`client_handshake`).
    """
    sock.sendall(f"KOS/{PROTOCOL_VERSION} {token}\n".encode("ascii"))


def read_answer(sock: socket.socket, *, leave_rest: bool = False) -> None:
    """Read the server's answer to the opening line (the second half of
    :func:`client_handshake`); with ``leave_rest``, what follows it stays unread.
    """
    reply = _read_line(sock, leave_rest=leave_rest)
    if reply == f"OK KOS/{PROTOCOL_VERSION}":
        return
    if reply.startswith("NO protocol"):
        raise ProtocolMismatch(reply[3:])
    if reply.startswith("NO "):
        raise AuthenticationFailed(reply[3:])
    raise AuthenticationFailed(f"the peer is not a kos server (it answered {reply[:40]!r})")


def server_handshake(sock: socket.socket, *, pipelined: bool = False) -> str:
    """Read the client's opening line and return its token (not yet checked).

    Raises :class:`AuthenticationFailed` (after telling the peer) on anything but a
    well-formed opening line of our protocol version. With ``pipelined`` (a Unix
    socket's server whose SBH says so), bytes may follow the line (the client's first
    request): they stay unread.
    """
    try:
        line = _read_line(sock, leave_rest=pipelined)
    except (OSError, AuthenticationFailed) as exc:
        raise AuthenticationFailed(f"bad opening: {exc}") from None
    version, _, token = line.partition(" ")
    if not version.startswith("KOS/") or not token:
        refuse(sock, "not a kos handshake")
        raise AuthenticationFailed("not a kos handshake")
    if version != f"KOS/{PROTOCOL_VERSION}":
        message = f"protocol {version} not supported; this side speaks KOS/{PROTOCOL_VERSION}"
        refuse(sock, message)
        raise ProtocolMismatch(message)
    return token


def accept(sock: socket.socket) -> None:
    """Tell the client its handshake was accepted."""
    sock.sendall(f"OK KOS/{PROTOCOL_VERSION}\n".encode("ascii"))


def refuse(sock: socket.socket, reason: str) -> None:
    """Tell the client why it is refused; errors are ignored (the peer may be gone)."""
    with contextlib.suppress(OSError):
        sock.sendall(f"NO {reason}\n".encode("ascii", "replace"))


def tokens_equal(given: str, expected: str) -> bool:
    """Compare credentials in constant time."""
    import hmac  # a server's need: a client that only connects never loads it

    return hmac.compare_digest(given.encode("ascii", "replace"), expected.encode("ascii"))


def _read_line(sock: socket.socket, *, leave_rest: bool = False) -> str:
    # Each side waits for the other's line before sending more, so a well-behaved
    # peer never sends bytes past the newline; a peer that does is refused. With
    # ``leave_rest`` (a stream's bytes follow the server's answer) the line is read by
    # peeking for its end, and what follows it stays unread.
    data = b""
    while b"\n" not in data:
        if len(data) >= MAX_LINE:
            raise AuthenticationFailed("handshake line too long")
        if leave_rest and is_tls(sock):
            chunk = sock.recv(1)  # TLS cannot peek; the line is a dozen bytes
        elif leave_rest:
            peeked = sock.recv(MAX_LINE, socket.MSG_PEEK)
            end = peeked.find(b"\n")
            chunk = sock.recv(len(peeked) if end < 0 else end + 1) if peeked else b""
        else:
            chunk = sock.recv(MAX_LINE)
        if not chunk:
            raise AuthenticationFailed("connection closed during the handshake")
        data += chunk
    line, _, rest = data.partition(b"\n")
    if rest:
        raise AuthenticationFailed("bytes sent before the handshake was answered")
    try:
        return line.decode("ascii")
    except UnicodeDecodeError:
        raise AuthenticationFailed("handshake is not ASCII") from None
