"""TLS for amqps:// connections: an SSLContext from the URI's options, with the meaning
RabbitMQ's Erlang client (3.10.8 on OTP 25) gives them.

- ``verify=verify_peer``: the server's chain must lead to ``cacertfile`` (the system's CA
  store when there is none) and its certificate must name ``server_name_indication``, else
  the URI's host (a DNS name, or an IP address in its subjectAltName).
- ``verify=verify_none``: nothing about the server is checked (encryption only).
- no ``verify``: as verify_none, with a warning each time, as RabbitMQ 3.10.8 logs
  ("certificate chain verification is not enabled"). RabbitMQ 4's client verifies by
  default; write ``verify=verify_peer`` to get the same on both.
- SNI: ``server_name_indication``, else the URI's host when it is a DNS name (none for an
  IP address); ``server_name_indication=disable`` sends none and skips the name check.
- ``certfile`` / ``keyfile`` (``password``: the key's passphrase): the client certificate,
  which a server with ``fail_if_no_peer_cert`` requires and EXTERNAL logins use.
- ``depth``: at most this many intermediate CAs between the server's certificate and the
  trusted one (OTP's meaning), checked once the handshake is done.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

from leveret.amqp.uri import SNI_DISABLE, TLSOptions
from leveret.client.errors import TLSError, TLSSetupError

log = logging.getLogger("leveret.client")


def _readable(option: str, file: str) -> None:
    path = Path(file)
    if not path.is_file():
        why = "it is a directory" if path.is_dir() else "no such file"
        raise TLSSetupError(f"cannot read {option} {file} (from the amqps URI): {why}; give "
                            f"the absolute path of a PEM file the leveret process can read")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise TLSSetupError(f"cannot read {option} {file} (from the amqps URI): "
                            f"{exc.strerror}; make it readable by the leveret process "
                            f"(user, mode)") from None


def _key_passphrase(keyfile: str) -> str:
    # without a callback OpenSSL would prompt on the terminal and block the process
    raise TLSSetupError(f"keyfile {keyfile} is encrypted: give its passphrase in the URI as "
                        f"password=... (percent-encoded)")


def client_context(tls: TLSOptions) -> ssl.SSLContext:
    """The SSLContext for ``tls``; raises TLSSetupError naming the option and file."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    verify = tls.verify == "verify_peer"
    context.check_hostname = verify and tls.server_name_indication != SNI_DISABLE
    context.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    if tls.cacertfile is not None:
        _readable("cacertfile", tls.cacertfile)
        try:
            context.load_verify_locations(cafile=tls.cacertfile)
        except ssl.SSLError as exc:
            raise TLSSetupError(f"cacertfile {tls.cacertfile} holds no usable CA "
                                f"certificate ({exc.reason or exc}); give a PEM file of the "
                                f"CA that signed the server's certificate") from None
    elif verify:
        context.load_default_certs()
    if tls.certfile is not None:
        _load_client_certificate(context, tls.certfile, tls.keyfile, tls.password)
    elif tls.keyfile is not None:
        raise TLSSetupError(f"keyfile {tls.keyfile} without certfile: give the client "
                            f"certificate as certfile=... too")
    return context


def _load_client_certificate(context: ssl.SSLContext, certfile: str, keyfile: str | None,
                             password: str | None) -> None:
    _readable("certfile", certfile)
    if keyfile is not None:
        _readable("keyfile", keyfile)
    key = keyfile or certfile  # as OTP: without keyfile the key is in the certfile
    try:
        context.load_cert_chain(
            certfile, keyfile,
            password if password is not None else lambda: _key_passphrase(key))
    except ssl.SSLError as exc:
        hint = ("the passphrase (password=...) is wrong" if password is not None
                and _encrypted(key) else
                "check that the key belongs to the certificate and both are PEM")
        raise TLSSetupError(f"cannot use certfile {certfile} with keyfile {key} "
                            f"({exc.reason or exc}): {hint}") from None


def _encrypted(keyfile: str) -> bool:
    """A PEM key under a passphrase (PKCS#8 "ENCRYPTED PRIVATE KEY", or the legacy
    "Proc-Type: 4,ENCRYPTED" header)."""
    try:
        return b"ENCRYPTED" in Path(keyfile).read_bytes()
    except OSError:
        return False


def server_hostname(tls: TLSOptions, host: str) -> str:
    """What asyncio's ``server_hostname`` should be: the SNI and the name checked, or ""
    for neither (``server_name_indication=disable``)."""
    if tls.server_name_indication == SNI_DISABLE:
        return ""
    return tls.server_name_indication or host


def warn_unverified(tls: TLSOptions, host: str, port: int) -> None:
    if tls.verify is None:
        log.warning("amqps connection to %s:%d: certificate chain verification is not "
                    "enabled (the URI has no verify=verify_peer)", host, port,
                    extra={"event": "tls_unverified"})


def verification_failed(exc: ssl.SSLCertVerificationError, tls: TLSOptions, host: str,
                        port: int) -> TLSError:
    """What to tell when the server's certificate failed the checks."""
    why = exc.verify_message or exc.reason or str(exc)
    if "mismatch" in str(why).lower():
        name = tls.server_name_indication or host
        hint = (f"its certificate is not valid for {name!r}: connect by a name the "
                f"certificate holds, or set server_name_indication to one")
    elif tls.cacertfile is not None:
        hint = f"its certificate does not chain to cacertfile {tls.cacertfile}"
    else:
        hint = ("its certificate does not chain to the system's CA store: give the CA that "
                "signed it as cacertfile=...")
    return TLSError(f"TLS: the server at {host}:{port} failed verification ({why}): {hint}")


def check_depth(tls: TLSOptions, ssl_object: Any) -> None:
    """Refuse a verified chain with more than ``depth`` intermediate CAs (OTP's depth)."""
    if tls.depth is None or tls.verify != "verify_peer" or ssl_object is None:
        return
    chain = _verified_chain(ssl_object)
    intermediates = max(0, len(chain) - 2)  # the server's certificate, ..., the trusted CA
    if intermediates > tls.depth:
        raise TLSError(f"TLS: the server's certificate chain has {intermediates} "
                            f"intermediate CA(s), more than depth={tls.depth} in the URI")


def _verified_chain(ssl_object: Any) -> list[Any]:
    public = getattr(ssl_object, "get_verified_chain", None)  # Python 3.13+
    if public is not None:
        return list(public())
    # Python 3.10-3.12 have it on the underlying _ssl object only
    inner = getattr(getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
    if inner is None:
        raise TLSSetupError("depth=... needs a Python whose ssl module shows the verified "
                            "chain (CPython 3.10 or later)")
    return list(inner())
