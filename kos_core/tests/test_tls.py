"""TLS material: authorities, the certificates they issue, and the contexts that use them."""

from __future__ import annotations

import datetime
import socket
import ssl
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509

from kos_core._net import tls, wire
from kos_core.errors import AuthenticationFailed

VALIDITY = datetime.timedelta(days=1)


def write_pair(path: Path, issued: tls.Issued) -> str:
    path.write_bytes(tls.write_pem_pair(issued))
    path.chmod(0o600)
    return str(path)


def serve_once(
    context: ssl.SSLContext,
) -> tuple[socket.socket, threading.Thread, list[BaseException]]:
    """A loopback listener whose one connection is wrapped by ``context`` and echoed;
    the thread serving it, and the errors it met.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    errors: list[BaseException] = []

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True) as secured:
                secured.sendall(secured.recv(64))
        except (OSError, ssl.SSLError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread, errors


def test_an_issued_certificate_chains_to_its_authority(tmp_path: Path) -> None:
    authority = tls.new_authority("k1")
    issued = authority.issue("k1", ["127.0.0.1", "k1.example"], VALIDITY)
    cert = x509.load_pem_x509_certificate(issued.cert_pem.encode())
    ca = x509.load_pem_x509_certificate(authority.cert_pem.encode())
    assert cert.issuer == ca.subject != cert.subject  # not mistaken for self-signed
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "k1.example" in names.get_values_for_type(x509.DNSName)
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert len(tls.fingerprint(authority.cert_pem)) == 64


def test_a_client_speaks_tls13_to_a_peer_of_a_trusted_authority(tmp_path: Path) -> None:
    authority = tls.new_authority("k2")
    server = tls.server_context(
        write_pair(tmp_path / "k2.pem", authority.issue("k2", [], VALIDITY))
    )
    tls.trust(authority.cert_pem)
    tls.trust(authority.cert_pem)  # idempotent
    listener, thread, errors = serve_once(server)
    with (
        listener,
        socket.create_connection(listener.getsockname()) as raw,
        tls.client_context().wrap_socket(raw) as secured,
    ):
        assert secured.version() == "TLSv1.3"
        secured.sendall(b"hello")
        assert secured.recv(64) == b"hello"
    thread.join(5)
    assert not errors


def test_a_peer_of_another_authority_is_refused(tmp_path: Path) -> None:
    stranger = tls.new_authority("stranger")
    pair = write_pair(tmp_path / "s.pem", stranger.issue("s", [], VALIDITY))
    listener, thread, errors = serve_once(tls.server_context(pair))
    with (
        listener,
        socket.create_connection(listener.getsockname()) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        tls.client_context().wrap_socket(raw)
    thread.join(5)
    assert errors  # the server saw the handshake fail too


def test_a_client_asking_for_one_kernel_refuses_another_kernel_of_the_same_authority(
    tmp_path: Path,
) -> None:
    world = tls.new_authority("kos world")
    tls.trust(world.cert_pem)
    impostor = write_pair(tmp_path / "B.pem", world.issue("B", ["127.0.0.1"], VALIDITY))
    listener, thread, errors = serve_once(tls.server_context(impostor))
    host, port = listener.getsockname()
    with listener, pytest.raises(AuthenticationFailed) as refused:
        wire.Address(host=host, port=port, kernel="A").connect(5)
    thread.join(5)
    assert "kernel 'B', not of kernel 'A'" in str(refused.value)
    listener, thread, errors = serve_once(tls.server_context(impostor))
    with (
        listener,
        wire.Address(host=host, port=listener.getsockname()[1], kernel="B").connect(5) as ok,
    ):
        ok.sendall(b"hello")
        assert ok.recv(64) == b"hello"
    thread.join(5)
    assert not errors


def test_an_older_tls_version_is_refused(tmp_path: Path) -> None:
    authority = tls.new_authority("k3")
    server = tls.server_context(
        write_pair(tmp_path / "k3.pem", authority.issue("k3", [], VALIDITY))
    )
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    listener, thread, errors = serve_once(server)
    with (
        listener,
        socket.create_connection(listener.getsockname()) as raw,
        pytest.raises(ssl.SSLError),
    ):
        old.wrap_socket(raw)
    thread.join(5)
    assert errors and "UNSUPPORTED_PROTOCOL" in str(errors[0])


def kos(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kos_core.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_world_ca_init_and_issue(tmp_path: Path) -> None:
    where = tmp_path / "world"
    made = kos("world", "ca", "init", "--dir", str(where))
    assert made.returncode == 0, made.stderr
    issued = kos("world", "ca", "issue", "alpha", "--host", "127.0.0.1", "--dir", str(where))
    assert issued.returncode == 0, issued.stderr
    assert stat.S_IMODE(where.stat().st_mode) == 0o700
    assert stat.S_IMODE((where / "ca-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((where / "alpha-key.pem").stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate((where / "ca.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((where / "alpha.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert tls.fingerprint((where / "ca.pem").read_text()) in made.stdout


def test_world_ca_never_overwrites_and_says_what_to_do(tmp_path: Path) -> None:
    where = tmp_path / "world"
    assert kos("world", "ca", "init", "--dir", str(where)).returncode == 0
    key = (where / "ca-key.pem").read_bytes()
    again = kos("world", "ca", "init", "--dir", str(where))
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "already exists" in again.stderr
    assert (where / "ca-key.pem").read_bytes() == key
    missing = kos("world", "ca", "issue", "beta", "--dir", str(tmp_path / "none"))
    assert missing.returncode == 2
    assert "kos world ca init" in missing.stderr and missing.stderr.count("\n") == 1
    bad = kos("world", "ca", "issue", "bad name", "--dir", str(where))
    assert bad.returncode == 2 and "bad kernel name" in bad.stderr
