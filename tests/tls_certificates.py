"""Real certificates for the amqps tests, made with ``cryptography``: CAs (a root, an
intermediate under it, an unrelated one), server certificates for localhost/127.0.0.1 and
client certificates, as PEM files."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Pem:
    cert: Path
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "leveret tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase
        else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption)


class Authority:
    """A CA; ``parent`` makes it an intermediate signed by that CA."""

    def __init__(self, directory: Path, name: str, parent: Authority | None = None) -> None:
        self.directory = directory
        self.parent = parent
        self.key = ec.generate_private_key(ec.SECP256R1())
        signer = parent.key if parent else self.key
        issuer = parent.cert.subject if parent else _name(name)
        self.cert = (self._builder(_name(name), issuer, self.key)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .add_extension(x509.KeyUsage(
                         digital_signature=True, key_cert_sign=True, crl_sign=True,
                         content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False,
                         encipher_only=False, decipher_only=False), True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                         self.key.public_key()), False)
                     .sign(signer, hashes.SHA256()))
        self.pem = directory / f"{name}.crt"
        self.pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    @staticmethod
    def _builder(subject: x509.Name, issuer: x509.Name,
                 key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1)))

    def issue(self, cn: str, server: bool, passphrase: bytes | None = None) -> Pem:
        """A leaf certificate; its file holds the chain up to (not including) the root."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (self._builder(_name(cn), self.cert.subject, key)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self.key.public_key()), False)
                   .add_extension(x509.ExtendedKeyUsage(
                       [ExtendedKeyUsageOID.SERVER_AUTH if server
                        else ExtendedKeyUsageOID.CLIENT_AUTH]), False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        cert = builder.sign(self.key, hashes.SHA256())
        chain = [cert] + ([self.cert] if self.parent else [])
        pem = Pem(self.directory / f"{cn}.crt", self.directory / f"{cn}.key")
        pem.cert.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM)
                                      for c in chain))
        pem.key.write_bytes(_key_pem(key, passphrase))
        return pem


@dataclass
class Certs:
    directory: Path
    ca: Authority
    other_ca: Authority   # trusted by nobody here
    server: Pem           # signed by ca: localhost, 127.0.0.1
    alice: Pem            # a client certificate for user "alice", signed by ca
    locked: Pem           # alice's certificate again, with an encrypted key
    intermediate: Authority  # under ca
    deep_server: Pem      # signed by the intermediate


def make_certs(directory: Path) -> Certs:
    ca = Authority(directory, "leveret-test-ca")
    intermediate = Authority(directory, "leveret-intermediate", parent=ca)
    other = Authority(directory, "other-ca")
    locked = ca.issue("alice-locked", server=False, passphrase=b"s3cret pass")
    return Certs(directory, ca, other, ca.issue("localhost", server=True),
                 ca.issue("alice", server=False), locked, intermediate,
                 intermediate.issue("deep-localhost", server=True))
