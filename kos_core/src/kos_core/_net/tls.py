"""TLS on every TCP socket: certificate authorities, the certificates they issue, contexts.

A kernel that listens on TCP alone makes a certificate authority for its run, issues
one certificate for its processes (kernel, plugins, children) and forgets the
authority's key; the authority's certificate goes into the connection file, and a
client trusts exactly the authorities it learnt from the connection files it read
(as go-plugin's AutoMTLS pins its per-run certificate). Only TLS 1.3 is spoken, and
a peer's certificate must chain to a trusted authority; credentials then travel
inside the encrypted connection, never in clear text.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kos_core._os import paths
from kos_core.errors import KosError

if TYPE_CHECKING:  # cryptography is imported only where certificates are made
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

#: how long certificates of a kernel's run stay valid
RUN_VALIDITY = datetime.timedelta(days=365)
_CLOCK_SKEW = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class Authority:
    """A certificate authority: its certificate and private key, in PEM."""

    cert_pem: str
    key_pem: str

    def issue(self, name: str, hosts: list[str], validity: datetime.timedelta) -> Issued:
        """A certificate for ``name``, valid for ``hosts`` (IP addresses or DNS names)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        ca_cert = x509.load_pem_x509_certificate(self.cert_pem.encode())
        ca_key = serialization.load_pem_private_key(self.key_pem.encode(), None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + validity)
            .add_extension(x509.SubjectAlternativeName(_alt_names(name, hosts)), critical=False)
            .add_extension(
                # Names the issuing key: authorities of one subject (a kernel restarted
                # under the same name) are then told apart.
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        return Issued(_pem(cert), _key_pem(key))


@dataclass(frozen=True)
class Issued:
    """A certificate an authority issued, and its private key, in PEM."""

    cert_pem: str
    key_pem: str


def new_authority(name: str, validity: datetime.timedelta = RUN_VALIDITY) -> Authority:
    """A new certificate authority for ``name`` (an ECDSA P-256 key).

    Its subject is ``"<name> authority"``, never the name of what it issues (a
    certificate whose subject is its issuer's would pass for self-signed).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} authority")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Authority(_pem(cert), _key_pem(key))


def for_one_run(kernel: str, host: str) -> tuple[str, bytes]:
    """TLS for a kernel alone: a new authority's certificate (to pin in the connection
    file), and one certificate and key it issued for ``host`` (the file its processes
    serve TCP with). The authority's key is forgotten: nothing else can be issued.
    """
    authority = new_authority(f"kos kernel {kernel}")
    return authority.cert_pem, write_pem_pair(authority.issue(kernel, [host], RUN_VALIDITY))


def fingerprint(cert_pem: str) -> str:
    """The SHA-256 fingerprint of a certificate, as hex."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    der = x509.load_pem_x509_certificate(cert_pem.encode()).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def server_context(cert_file: str) -> ssl.SSLContext:
    """A TLS 1.3 server context presenting the certificate and key in ``cert_file``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert_file)
    return context


def kernel_server_context(kernel: str) -> ssl.SSLContext:
    """The TLS context a process of kernel ``kernel`` serves TCP with: the certificate
    the kernel issued for its run (only a process on the kernel's own machine has it).
    """
    path = paths.tls_file(kernel)
    try:
        return server_context(str(path))
    except OSError as exc:
        raise KosError(
            f"cannot serve over TCP for kernel {kernel!r}: no certificate at {path}"
            f" ({exc.strerror or exc})"
        ) from None


class _Trust:
    """The authorities this process trusts, and the client context that trusts them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: set[str] = set()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_3
        # A kos peer is named by its authority, not by a host name: each kernel's run
        # (or world) has its own authority, and only its processes hold keys it signed.
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_REQUIRED

    def add(self, cert_pem: str) -> None:
        with self._lock:
            if cert_pem not in self._known:
                self.context.load_verify_locations(cadata=cert_pem)
                self._known.add(cert_pem)


_trust = _Trust()


def trust(cert_pem: str) -> None:
    """Trust the authority whose certificate is ``cert_pem`` from now on (idempotent)."""
    _trust.add(cert_pem)


def client_context() -> ssl.SSLContext:
    """The client context of this process: TLS 1.3, peers signed by a trusted authority."""
    return _trust.context


def peer_name(sock: ssl.SSLSocket) -> str | None:
    """The subject's common name in the certificate the peer of ``sock`` presented
    (the kernel an authority issued it to), or ``None``.
    """
    subject: Any = (sock.getpeercert() or {}).get("subject", ())
    for rdn in subject:
        for attribute in rdn:
            if attribute[0] == "commonName":
                return str(attribute[1])
    return None


def ask_client_certificates(context: ssl.SSLContext, ca_pem: str) -> None:
    """Have server ``context`` ask every client for a certificate, verified against the
    authority ``ca_pem`` alone. A client that presents none still connects; one whose
    certificate that authority did not sign fails its TLS handshake.
    """
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=ca_pem)


def presenting_context(ca_pem: str, cert_file: str, key_file: str | None = None) -> ssl.SSLContext:
    """A TLS 1.3 client context that presents the certificate in ``cert_file`` (its key
    in ``key_file``, else in ``cert_file`` too), trusts the authority ``ca_pem`` alone
    and checks that the server's certificate names the ``server_hostname`` it is
    wrapped with (a kernel's name, for a world's kernels).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(cadata=ca_pem)
    context.load_cert_chain(cert_file, key_file)
    return context


def write_pem_pair(issued: Issued) -> bytes:
    """The bytes of a PEM file holding a certificate followed by its key."""
    return (issued.cert_pem + issued.key_pem).encode("ascii")


def _alt_names(name: str, hosts: list[str]) -> list[x509.GeneralName]:
    from cryptography import x509

    names: list[x509.GeneralName] = []
    for host in [*hosts, name]:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _pem(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
