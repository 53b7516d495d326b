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

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
