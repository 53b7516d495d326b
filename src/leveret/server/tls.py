"""TLS for the AMQPS listener (and the management HTTPS server): one SSLContext from files.

The peer-verification settings use RabbitMQ's names (``ssl_options.verify`` and
``ssl_options.fail_if_no_peer_cert``) folded into one ``verify`` value:

- ``verify_none``: no client certificate is asked for;
- ``verify_peer``: a client certificate is asked for and, when one is sent, it must chain to
  the CA file; clients without one are still accepted (RabbitMQ's verify_peer with
  fail_if_no_peer_cert = false);
- ``fail_if_no_peer_cert``: a verified client certificate is required.

A verified client certificate allows the EXTERNAL login mechanism: the user is the
certificate's subject common name (RabbitMQ's ``ssl_cert_login_from = common_name``).
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leveret.broker.tls_session import TLSSession

VERIFY_MODES = {
    "verify_none": ssl.CERT_NONE,
    "verify_peer": ssl.CERT_OPTIONAL,
    "fail_if_no_peer_cert": ssl.CERT_REQUIRED,
}
VERIFY_ALIASES = {"none": "verify_none", "peer": "verify_peer"}
MIN_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class TLSConfigError(ValueError):
    """The TLS settings or files cannot make a server context; the message says why."""


def normalize_verify(value: str) -> str:
    verify = VERIFY_ALIASES.get(value, value)
    if verify not in VERIFY_MODES:
        raise TLSConfigError(f"verify must be one of {', '.join(VERIFY_MODES)}, got {value!r}")
    return verify


def normalize_min_version(value: str) -> str:
    version = value.lower().removeprefix("tlsv")
    if version not in MIN_VERSIONS:
        raise TLSConfigError(f"min_version must be 1.2 or 1.3, got {value!r}")
    return version


@dataclass(frozen=True)
class TLSConfig:
    certfile: str | Path
    keyfile: str | Path
    cafile: str | Path | None = None
    verify: str = "verify_none"
    min_version: str = "1.2"

    def __post_init__(self) -> None:
        object.__setattr__(self, "verify", normalize_verify(self.verify))
        object.__setattr__(self, "min_version", normalize_min_version(self.min_version))
        if self.verify != "verify_none" and self.cafile is None:
            raise TLSConfigError(f"verify = {self.verify} needs a CA file to check client "
                                 "certificates against")


def server_context(config: TLSConfig) -> ssl.SSLContext:
    """A server-side SSLContext for ``config``; also what the management server uses for
    HTTPS. Raises TLSConfigError naming the file that could not be used."""
    files = {"certificate": config.certfile, "key": config.keyfile, "CA": config.cafile}
    for what, file in files.items():
        if file is not None and not Path(file).is_file():
            raise TLSConfigError(f"cannot read {what} file {file}: no such file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_VERSIONS[config.min_version]
    try:
        context.load_cert_chain(str(config.certfile), str(config.keyfile))
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(f"cannot load certificate {config.certfile} with key "
                             f"{config.keyfile}: {exc}") from None
    if config.cafile is not None:
        try:
            context.load_verify_locations(cafile=str(config.cafile))
        except (ssl.SSLError, OSError) as exc:
            raise TLSConfigError(f"cannot load CA file {config.cafile}: {exc}") from None
    context.verify_mode = VERIFY_MODES[config.verify]
    return context


def peer_common_name(peercert: dict[str, Any] | None) -> str | None:
    """The subject CN of a verified peer certificate (``SSLObject.getpeercert()``), or None
    when the client sent none (an unverified certificate is not returned by ssl at all)."""
    if not peercert:
        return None
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def session_details(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> TLSSession | None:
    """The management API's view of a TLS connection (None for a plain one)."""
    if ssl_object is None:
        return None
    version = (ssl_object.version() or "").lower()
    suite = ssl_object.cipher()
    key_exchange, cipher, mac = _erlang_suite(suite[0] if suite else "", version)
    peer = ssl_object.getpeercert() or {}
    subject = _distinguished_name(peer.get("subject"))
    issuer = _distinguished_name(peer.get("issuer"))
    validity = None
    if "notBefore" in peer and "notAfter" in peer:
        validity = f"{_iso(str(peer['notBefore']))} - {_iso(str(peer['notAfter']))}"
    return TLSSession(version, key_exchange, cipher, mac, subject, issuer, validity)


def _erlang_suite(name: str, version: str) -> tuple[str, str, str]:
    """(key exchange, cipher, hash) of an OpenSSL cipher suite name as Erlang's ssl names
    them: TLS_AES_256_GCM_SHA384 is (any, aes_256_gcm, aead); ECDHE-RSA-AES128-SHA256 is
    (ecdhe_rsa, aes_128_cbc, sha256)."""
    parts = name.removeprefix("TLS_").split("_" if name.startswith("TLS_") else "-")
    if version == "tlsv1.3" or name.startswith("TLS_"):
        cipher_parts, mac = parts[:-1], "aead"
        exchange = "any"
    else:
        exchange_parts = []
        while parts and parts[0] in ("ECDHE", "DHE", "RSA", "ECDSA", "PSK"):
            exchange_parts.append(parts.pop(0))
        exchange = "_".join(exchange_parts).lower() or "rsa"
        if parts and parts[-1] == "POLY1305":  # an AEAD: no hash in the name
            cipher_parts, mac = parts, "aead"
        else:
            cipher_parts, mac = parts[:-1], parts[-1].lower() if parts else ""
    cipher = "_".join(cipher_parts).lower()
    if cipher.startswith("aes") and not cipher.startswith("aes_"):  # AES128-GCM
        size = cipher[3:].split("_")[0]
        rest = cipher[3 + len(size):].lstrip("_")
        cipher = f"aes_{size}_{rest or 'cbc'}"
    if cipher.endswith("_gcm") or cipher.startswith("chacha20"):
        mac = "aead"
    return exchange, cipher, mac


def _distinguished_name(rdns: Any) -> str | None:
    """RFC 4514 text of a name from ``getpeercert()``, most specific first
    (``CN=alice,O=example``), as RabbitMQ prints it."""
    if not rdns:
        return None
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
             "countryName": "C", "stateOrProvinceName": "ST", "localityName": "L",
             "emailAddress": "emailAddress", "domainComponent": "DC"}
    parts = ["+".join(f"{short.get(k, k)}={v}" for k, v in rdn) for rdn in rdns]
    return ",".join(reversed(parts))


def _iso(when: str) -> str:
    seconds = ssl.cert_time_to_seconds(when)
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
