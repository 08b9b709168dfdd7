"""HTTPS for the sandbox: a self-made CA and a serving certificate (``cryptography``, imported only
when TLS is asked for), and the files an in-cluster client expects (token, ca.crt, namespace)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

# Names an in-cluster client may use for the API server, besides the address the sandbox listens on.
SERVICE_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local")
SERVICE_IPS = ("127.0.0.1", "10.96.0.1")


def _write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


def make_certificates(directory: Path, host: str) -> tuple[Path, Path, Path]:
    """Write ``ca.crt``, ``server.crt`` and ``server.key`` (EC P-256, one year) into ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    later = now + datetime.timedelta(days=365)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-sandbox-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(later)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names: list = [x509.DNSName(n) for n in SERVICE_NAMES]
    ips = set(SERVICE_IPS)
    try:
        ips.add(str(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in sorted(ips)]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(later)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    ca_path = _write(directory / "ca.crt", ca.public_bytes(pem), 0o644)
    cert_path = _write(directory / "server.crt", cert.public_bytes(pem), 0o644)
    key_path = _write(directory / "server.key", key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca_path, cert_path, key_path


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    ctx.set_alpn_protocols(["http/1.1"])  # no HTTP/2: clients fall back to 1.1
    return ctx


def write_service_account(directory: Path, token: str, ca_path: Path, namespace: str = "default") -> Path:
    """The files of ``/var/run/secrets/kubernetes.io/serviceaccount`` (token, ca.crt, namespace)."""
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / "token", token.encode())
    _write(directory / "ca.crt", Path(ca_path).read_bytes(), 0o644)
    _write(directory / "namespace", namespace.encode(), 0o644)
    return directory
