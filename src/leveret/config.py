"""``leveret serve`` configuration: a TOML file, environment variables and flags.

Precedence, highest first: command-line flags > environment variables
(``LEVERET_<SECTION>_<KEY>``, e.g. ``LEVERET_AMQP_PORT=5673``) > the file given with
``--config`` > built-in defaults. docs/configuration.md lists every key; ``KEYS`` below is
the single table the file parser, the environment, the flags and that page follow.

Any bad value stops the broker before it starts, with a message naming where the value came
from, the key and what was expected:

    config.toml: [amqp] port: expected a port number 0-65535, got 'abc'
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leveret.store.base import FsyncPolicy


class ConfigError(Exception):
    """A configuration value, file or combination that cannot be used; str() says why."""


# -- value parsers: native TOML values, or strings from the environment and flags ------------

Parser = Callable[[Any], Any]


class Expected(ValueError):
    """Raised by a parser with what it expected, e.g. "an integer 1-65535"."""


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise Expected("")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value)
    raise Expected("")


def port(value: Any) -> int:
    try:
        number = _int(value)
    except Expected:
        number = -1
    if not 0 <= number <= 65535:
        raise Expected("a port number 0-65535 (0: any free port)")
    return number


def optional_port(value: Any) -> int | None:
    """A port, or off: "" / "off" / "none" (the stream protocol listener's default)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off",
                                                                              "none")):
        return None
    try:
        return port(value)
    except Expected:
        raise Expected('a port number 0-65535, or "off"') from None


def optional_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return text(value)


def integer(low: int, high: int | None = None) -> Parser:
    wanted = f"an integer {low}-{high}" if high is not None else f"an integer >= {low}"

    def parse(value: Any) -> int:
        try:
            number = _int(value)
        except Expected:
            raise Expected(wanted) from None
        if number < low or (high is not None and number > high):
            raise Expected(wanted)
        return number
    return parse


def seconds(high: float) -> Parser:
    wanted = f"a number of seconds 0-{high:g}"

    def parse(value: Any) -> float:
        if isinstance(value, bool):
            raise Expected(wanted)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise Expected(wanted) from None
        if not 0 <= number <= high:
            raise Expected(wanted)
        return number
    return parse


def connection_limit(value: Any) -> int | None:
    """A count, or "infinity" (RabbitMQ's word for no limit)."""
    if isinstance(value, str) and value.strip().lower() in ("infinity", "unlimited"):
        return None
    try:
        number = _int(value)
    except Expected:
        number = -1
    if number < 0:
        raise Expected('an integer >= 0 or "infinity"')
    return number


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise Expected("true or false")


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise Expected("a string")
    return value


def choice(*options: str, aliases: Mapping[str, str] | None = None) -> Parser:
    def parse(value: Any) -> str:
        if isinstance(value, str):
            value = value.strip().lower()
            value = (aliases or {}).get(value, value)
            if value in options:
                return str(value)
        raise Expected(f"one of {', '.join(options)}")
    return parse


def path(value: Any) -> Path:
    if not isinstance(value, str | Path) or not str(value):
        raise Expected("a path")
    return Path(value).expanduser()


def optional_path(value: Any) -> Path | None:
    if value == "" or value is None:
        return None
    return path(value)


def string_list(value: Any) -> list[str]:
    """A TOML array of strings, or a comma-separated string (environment, flags)."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise Expected("a list of strings")


def fsync_policy(value: Any) -> str:
    if isinstance(value, str):
        try:
            FsyncPolicy.parse(value.strip())
        except ValueError:
            pass
        else:
            return value.strip()
    raise Expected('"always", "interval", "interval:<ms>" or "off"')


# RabbitMQ's units: kB/MB/GB/TB are powers of 1000, k/kiB, M/MiB, G/GiB, T/TiB of 1024.
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "k": 2**10, "kib": 2**10, "m": 2**20, "mib": 2**20, "g": 2**30, "gib": 2**30,
          "t": 2**40, "tib": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def threshold(value: Any) -> float | int:
    """A fraction of RAM (a float such as 0.4) or an absolute size in bytes (an integer,
    or a string with a unit: "50MB", "2GiB")."""
    wanted = 'a fraction of RAM such as 0.4, or bytes such as 50000000 or "50MB"'
    if isinstance(value, bool):
        raise Expected(wanted)
    if isinstance(value, int | float):
        if value < 0:
            raise Expected(wanted)
        return value
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        if match:
            number, unit = match.groups()
            if unit == "" and "." in number:
                return float(number)  # "0.4" from the environment
            if unit.lower() in _UNITS:
                return int(float(number) * _UNITS[unit.lower()])
    raise Expected(wanted)


# -- the keys --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Key:
    section: str
    name: str
    parse: Parser
    default: Any
    flag: str | None
    help: str
    flag_value: Any = None  # for switches: the value the flag sets (no argument)

    @property
    def env(self) -> str:
        return f"LEVERET_{self.section.upper()}_{self.name.upper()}"

    @property
    def label(self) -> str:
        return f"[{self.section}] {self.name}"


DEFAULT_DATA_DIR = Path.home() / ".local/share/leveret"

KEYS: tuple[Key, ...] = (
    Key("amqp", "enabled", boolean, True, "--no-plain",
        "the plain AMQP listener (false: AMQPS only)", flag_value=False),
    Key("amqp", "host", text, "127.0.0.1", "--host",
        "address the AMQP and AMQPS listeners bind to"),
    Key("amqp", "port", port, 5672, "--port", "AMQP port"),
    Key("amqps", "port", port, 5671, "--amqps-port",
        "AMQPS (AMQP over TLS) port; the listener is on when cert and key are set"),
    Key("amqps", "cert", optional_path, None, "--tls-cert",
        "server certificate (PEM), chain included"),
    Key("amqps", "key", optional_path, None, "--tls-key", "private key (PEM) of the cert"),
    Key("amqps", "ca", optional_path, None, "--tls-ca",
        "CA certificates (PEM) that client certificates must chain to"),
    Key("amqps", "verify", choice("verify_none", "verify_peer", "fail_if_no_peer_cert",
                                  aliases={"none": "verify_none", "peer": "verify_peer"}),
        "verify_none", "--tls-verify",
        "client certificates: verify_none, verify_peer (checked when sent) or "
        "fail_if_no_peer_cert (required)"),
    Key("amqps", "min_version", choice("1.2", "1.3", aliases={"tlsv1.2": "1.2",
                                                               "tlsv1.3": "1.3"}),
        "1.2", "--tls-min-version", "lowest TLS version accepted: 1.2 or 1.3"),
    Key("management", "enabled", boolean, True, "--no-management",
        "the management HTTP API", flag_value=False),
    Key("management", "host", text, "127.0.0.1", "--management-host",
        "address the management HTTP API binds to"),
    Key("management", "port", port, 15672, "--management-port", "management HTTP API port"),
    Key("management", "tls", boolean, False, "--management-tls",
        "serve the management API over HTTPS with the [amqps] certificate", flag_value=True),
    Key("stream", "port", optional_port, None, "--stream-port",
        "RabbitMQ stream protocol port (RabbitMQ's is 5552); off unless set"),
    Key("stream", "advertised_host", optional_text, None, "--stream-advertised-host",
        "host stream clients are told to connect to (default: the AMQP host)"),
    Key("stream", "advertised_port", optional_port, None, "--stream-advertised-port",
        "port stream clients are told to connect to (default: the stream port)"),
    Key("stream", "tls_port", optional_port, None, "--stream-tls-port",
        "stream protocol over TLS port (RabbitMQ's is 5551), with the [amqps] certificate; "
        "off unless set"),
    Key("stream", "advertised_tls_port", optional_port, None, "--stream-advertised-tls-port",
        "port TLS stream clients are told to connect to (default: the stream TLS port)"),
    Key("storage", "data_dir", path, DEFAULT_DATA_DIR, "--data-dir",
        "where the broker keeps its data (also $LEVERET_DATA_DIR)"),
    Key("storage", "fsync", fsync_policy, "always", "--fsync",
        "when durable changes reach the disk: always, interval[:MS] or off"),
    Key("limits", "channel_max", integer(1, 65535), 2047, "--channel-max",
        "channels per connection offered in connection.tune"),
    Key("limits", "frame_max", integer(4096, 1 << 31), 131072, "--frame-max",
        "largest frame in bytes offered in connection.tune"),
    Key("limits", "heartbeat", integer(0, 65535), 60, "--heartbeat",
        "heartbeat interval in seconds offered in connection.tune (0: off)"),
    Key("limits", "max_message_size", integer(1, 512 << 20), 128 << 20,
        "--max-message-size", "largest message body in bytes"),
    Key("limits", "max_connections", connection_limit, None, "--max-connections",
        'connections to the whole broker ("infinity": no limit)'),
    Key("limits", "queue_memory_messages", integer(0, 1 << 62), 100_000,
        "--queue-memory-messages",
        "messages a queue keeps in memory before paging the rest to disk"),
    Key("limits", "queue_memory_bytes", integer(0, 1 << 62), 64 << 20,
        "--queue-memory-bytes",
        "body bytes a queue keeps in memory before paging the rest to disk"),
    Key("alarms", "memory_high_watermark", threshold, 0.4, "--memory-high-watermark",
        "memory alarm: process RSS above this fraction of RAM, or bytes"),
    Key("alarms", "disk_free_limit", threshold, 50_000_000, "--disk-free-limit",
        "disk alarm: free bytes of the data directory's disk below this (or fraction of RAM)"),
    Key("log", "level", choice("debug", "info", "warning", "error"), "info", "--log-level",
        "lowest level logged"),
    Key("log", "format", choice("text", "json"), "text", "--log-format",
        "text, or json: one object per line"),
    Key("auth", "loopback_users", string_list, ["guest"], "--loopback-users",
        "users who may log in only from localhost (comma-separated for env and flag)"),
    # Below the server's 10 s handshake timeout, which would cut a longer wait short.
    Key("auth", "failed_login_delay", seconds(9), 3.0, "--failed-login-delay",
        "seconds a refused login waits for its answer (0: answered at once)"),
    Key("definitions", "load_file", optional_path, None, "--load-definitions",
        "RabbitMQ definitions JSON imported at start"),
)
SECTIONS: dict[str, dict[str, Key]] = {}
for _key in KEYS:
    SECTIONS.setdefault(_key.section, {})[_key.name] = _key
# Older name of LEVERET_STORAGE_DATA_DIR, still read (below it in precedence).
LEGACY_ENV = {"LEVERET_DATA_DIR": ("storage", "data_dir")}


# -- the result ------------------------------------------------------------------------------

@dataclass
class Config:
    """Every key's value after precedence, as ``values[section][key]``, plus where each
    came from ("default", the file name, the environment variable, or the flag)."""

    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[tuple[str, str], str] = field(default_factory=dict)

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.values[section]

    def get(self, section: str, name: str) -> Any:
        return self.values[section][name]

    def set(self, key: Key, value: Any, source: str) -> None:
        self.values.setdefault(key.section, {})[key.name] = value
        self.sources[(key.section, key.name)] = source

    @property
    def tls_enabled(self) -> bool:
        return self.get("amqps", "cert") is not None


def _parse(key: Key, raw: Any, where: str) -> Any:
    try:
        return key.parse(raw)
    except Expected as exc:
        raise ConfigError(f"{where}: expected {exc}, got {raw!r}") from None


def read_file(file: Path) -> dict[str, dict[str, Any]]:
    """The file's values, checked: unknown sections and keys and bad values are errors."""
    try:
        with open(file, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None
    values: dict[str, dict[str, Any]] = {}
    for section, table in data.items():
        keys = SECTIONS.get(section)
        if keys is None:
            raise ConfigError(f"{file}: unknown section [{section}]; expected one of "
                              f"{', '.join(f'[{s}]' for s in SECTIONS)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{file}: [{section}] must be a table of keys, got {table!r}")
        for name, raw in table.items():
            key = keys.get(name)
            if key is None:
                raise ConfigError(f"{file}: [{section}] {name}: unknown key; expected one of "
                                  f"{', '.join(keys)}")
            values.setdefault(section, {})[name] = _parse(key, raw, f"{file}: {key.label}")
    return values


def load(file: Path | None = None, env: Mapping[str, str] | None = None,
         flags: Mapping[tuple[str, str], Any] | None = None) -> Config:
    """Defaults, then the file, then the environment, then ``flags`` ({(section, key):
    raw value} of the flags given), each overriding the one before."""
    env = os.environ if env is None else env
    config = Config()
    for key in KEYS:
        config.set(key, key.default, "default")
    if file is not None:
        for section, table in read_file(file).items():
            for name, value in table.items():
                config.set(SECTIONS[section][name], value, str(file))
    for legacy, (section, name) in LEGACY_ENV.items():
        key = SECTIONS[section][name]
        if legacy in env and key.env not in env:
            config.set(key, _parse(key, env[legacy], legacy), legacy)
    for key in KEYS:
        if key.env in env:
            config.set(key, _parse(key, env[key.env], key.env), key.env)
    for (section, name), raw in (flags or {}).items():
        key = SECTIONS[section][name]
        where = key.flag or key.label
        config.set(key, _parse(key, raw, where), where)
    _check_combination(config)
    return config


def _check_combination(config: Config) -> None:
    def where(section: str, name: str) -> str:
        source = config.sources[(section, name)]
        return f"[{section}] {name}" + ("" if source == "default" else f" (from {source})")

    cert, key, ca = (config.get("amqps", k) for k in ("cert", "key", "ca"))
    if (cert is None) != (key is None):
        missing = "key" if key is None else "cert"
        given = "cert" if key is None else "key"
        raise ConfigError(f"[amqps] {missing}: required when {where('amqps', given)} is set")
    verify = config.get("amqps", "verify")
    if cert is not None and verify != "verify_none" and ca is None:
        raise ConfigError(f"[amqps] ca: required when {where('amqps', 'verify')} is {verify}")
    if config.get("management", "enabled") and config.get("management", "tls") and cert is None:
        raise ConfigError(f"{where('management', 'tls')} is true but [amqps] cert and key "
                          "are not set")
    if config.get("stream", "tls_port") is not None and cert is None:
        raise ConfigError(f"{where('stream', 'tls_port')} is set but [amqps] cert and key "
                          "are not: the stream protocol's TLS listener uses them")
    if not config.get("amqp", "enabled") and cert is None:
        raise ConfigError(f"{where('amqp', 'enabled')} is false and [amqps] has no cert and "
                          "key: the broker would accept no connections")
