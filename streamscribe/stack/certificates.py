"""A private certificate authority and the server certificates it signs, as PEM files (``cryptography``).

The local Apache Kafka cluster uses them for its SASL_SSL listeners: clients trust the CA file, brokers present
a certificate whose subject alternative names cover the loopback addresses they advertise.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_BITS = 2048
VALID_FOR = dt.timedelta(days=365)


@dataclass(frozen=True)
class CertificateFiles:
    """A certificate and its private key (PKCS#8, unencrypted), each a PEM file."""

    cert: Path
    key: Path

    def load(self) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        key = serialization.load_pem_private_key(self.key.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError(f"{self.key} does not hold an RSA key")
        return cert, key


def make_ca(directory: Path, common_name: str = "streamscribe local CA") -> CertificateFiles:
    """A self-signed CA certificate and key in ``directory`` (ca.pem, ca.key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write(directory, "ca", cert, key)


def issue_server_certificate(ca: CertificateFiles, directory: Path, name: str,
                             hosts: Iterable[str]) -> CertificateFiles:
    """A server certificate signed by ``ca`` for ``hosts`` (IP addresses and DNS names), in ``directory``
    as ``<name>.pem`` (the certificate followed by the CA's, a full chain) and ``<name>.key``."""
    ca_cert, ca_key = ca.load()
    hosts = list(hosts)
    if not hosts:
        raise ValueError("a server certificate needs at least one host name or address")
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return _write(directory, name, cert, key, chain=(ca_cert,))


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _write(directory: Path, name: str, cert: x509.Certificate, key: rsa.RSAPrivateKey,
           chain: tuple[x509.Certificate, ...] = ()) -> CertificateFiles:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = CertificateFiles(directory / f"{name}.pem", directory / f"{name}.key")
    files.cert.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (cert, *chain)))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_pem)
    return files
