"""Configuration: TOML file < environment < flags, every error naming the bad key, and
`leveret serve --config FILE` in a subprocess."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pika
import pytest
from served import stop

from leveret import config as cfg
from leveret.cli.main import _given_flags, build_parser

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str | None = None, env: dict[str, str] | None = None,
             flags: dict[tuple[str, str], object] | None = None) -> str:
    file = write(tmp_path, text) if text is not None else None
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load(file, env or {}, flags)
    return str(info.value)


def test_defaults() -> None:
    config = cfg.load(None, {})
    assert config["amqp"] == {"enabled": True, "host": "127.0.0.1", "port": 5672}
    assert config.get("amqps", "port") == 5671 and not config.tls_enabled
    assert config["management"] == {"enabled": True, "host": "127.0.0.1", "port": 15672,
                                    "tls": False}
    assert config.get("storage", "data_dir") == Path.home() / ".local/share/leveret"
    assert config["limits"] == {"channel_max": 2047, "frame_max": 131072, "heartbeat": 60,
                                "max_message_size": 128 << 20, "max_connections": None,
                                "queue_memory_messages": 100_000,
                                "queue_memory_bytes": 64 << 20}
    assert config["alarms"] == {"memory_high_watermark": 0.4, "disk_free_limit": 50_000_000}
    assert config["log"] == {"level": "info", "format": "text"}
    assert config.get("auth", "loopback_users") == ["guest"]
    assert config.get("definitions", "load_file") is None
    assert set(config.sources.values()) == {"default"}


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    file = write(tmp_path, '[amqp]\nport = 1111\nhost = "0.0.0.0"\n[log]\nlevel = "debug"\n')
    env = {"LEVERET_AMQP_PORT": "2222", "LEVERET_LOG_LEVEL": "warning"}
    flags = {("amqp", "port"): "3333"}
    config = cfg.load(file, env, flags)
    assert config.get("amqp", "port") == 3333
    assert config.get("log", "level") == "warning"
    assert config.get("amqp", "host") == "0.0.0.0"
    assert config.get("limits", "heartbeat") == 60
    assert config.sources[("amqp", "port")] == "--port"
    assert config.sources[("log", "level")] == "LEVERET_LOG_LEVEL"
    assert config.sources[("amqp", "host")] == str(file)
    assert cfg.load(file, env).get("amqp", "port") == 2222
    assert cfg.load(file, {}).get("amqp", "port") == 1111


def test_flags_from_the_command_line(tmp_path: Path) -> None:
    args = build_parser().parse_args([
        "serve", "--config", str(tmp_path / "c.toml"), "--port", "0", "--no-management",
        "--log-format", "json", "--tls-cert", "c.pem", "--tls-key", "k.pem",
        "--amqps-port", "0", "--management-port", "0"])
    flags = _given_flags(args)
    assert flags == {("amqp", "port"): "0", ("management", "enabled"): False,
                     ("log", "format"): "json", ("amqps", "cert"): "c.pem",
                     ("amqps", "key"): "k.pem", ("amqps", "port"): "0",
                     ("management", "port"): "0"}
    config = cfg.load(None, {}, flags)
    assert config.tls_enabled and config.get("amqps", "cert") == Path("c.pem")
    assert config.get("management", "enabled") is False


def test_environment_values_are_parsed(tmp_path: Path) -> None:
    config = cfg.load(None, {
        "LEVERET_AUTH_LOOPBACK_USERS": "guest, admin", "LEVERET_MANAGEMENT_TLS": "no",
        "LEVERET_ALARMS_MEMORY_HIGH_WATERMARK": "0.6", "LEVERET_ALARMS_DISK_FREE_LIMIT": "2GB",
        "LEVERET_LIMITS_MAX_CONNECTIONS": "100", "LEVERET_AMQP_ENABLED": "true",
        "LEVERET_DATA_DIR": str(tmp_path / "legacy"),
        "LEVERET_MANAGEMENT_URL": "http://elsewhere",  # the admin CLI's: not a serve key
    })
    assert config.get("auth", "loopback_users") == ["guest", "admin"]
    assert config.get("management", "tls") is False
    assert config.get("alarms", "memory_high_watermark") == 0.6
    assert config.get("alarms", "disk_free_limit") == 2_000_000_000
    assert config.get("limits", "max_connections") == 100
    assert config.get("storage", "data_dir") == tmp_path / "legacy"
    newer = cfg.load(None, {"LEVERET_DATA_DIR": "/a", "LEVERET_STORAGE_DATA_DIR": "/b"})
    assert newer.get("storage", "data_dir") == Path("/b")


def test_file_values_of_every_type(tmp_path: Path) -> None:
    config = cfg.load(write(tmp_path, """
[amqp]
enabled = false
[amqps]
port = 5671
cert = "~/server.pem"
key = "/etc/leveret/key.pem"
ca = "/etc/leveret/ca.pem"
verify = "fail_if_no_peer_cert"
min_version = "1.3"
[management]
tls = true
[storage]
fsync = "interval:50"
[limits]
max_connections = "infinity"
heartbeat = 0
[alarms]
memory_high_watermark = "1GiB"
disk_free_limit = 1.0
[log]
format = "json"
[auth]
loopback_users = []
[definitions]
load_file = "defs.json"
"""), {})
    assert config.get("amqps", "cert") == Path.home() / "server.pem"
    assert config.get("amqps", "verify") == "fail_if_no_peer_cert"
    assert config.get("storage", "fsync") == "interval:50"
    assert config.get("limits", "max_connections") is None
    assert config.get("alarms", "memory_high_watermark") == 1 << 30
    assert config.get("alarms", "disk_free_limit") == 1.0
    assert config.get("auth", "loopback_users") == []
    assert config.get("definitions", "load_file") == Path("defs.json")


@pytest.mark.parametrize(("text", "message"), [
    ('[amqp]\nport = "abc"\n',
     "config.toml: [amqp] port: expected a port number 0-65535 (0: any free port), got 'abc'"),
    ("[amqp]\nport = 70000\n", "[amqp] port: expected a port number 0-65535"),
    ("[amqp]\nprot = 1\n", "config.toml: [amqp] prot: unknown key; expected one of enabled, "
                           "host, port"),
    ("[amqpx]\nport = 1\n", "config.toml: unknown section [amqpx]; expected one of [amqp]"),
    ("amqp = 1\n", "config.toml: [amqp] must be a table of keys, got 1"),
    ("[amqp]\nport = \n", "config.toml: invalid TOML"),
    ("[amqp]\nenabled = 1\n", "[amqp] enabled: expected true or false, got 1"),
    ("[amqp]\nhost = 127\n", "[amqp] host: expected a string, got 127"),
    ('[amqps]\nverify = "always"\n', "[amqps] verify: expected one of verify_none, "
                                     "verify_peer, fail_if_no_peer_cert, got 'always'"),
    ('[amqps]\nmin_version = "1.0"\n', "[amqps] min_version: expected one of 1.2, 1.3"),
    ("[amqps]\ncert = 5\n", "[amqps] cert: expected a path, got 5"),
    ('[storage]\nfsync = "sometimes"\n', "[storage] fsync: expected \"always\", \"interval\""),
    ("[limits]\nchannel_max = 0\n", "[limits] channel_max: expected an integer 1-65535, got 0"),
    ("[limits]\nframe_max = 100\n", "[limits] frame_max: expected an integer 4096-"),
    ("[limits]\nmax_connections = -1\n",
     "[limits] max_connections: expected an integer >= 0 or \"infinity\", got -1"),
    ('[alarms]\nmemory_high_watermark = "lots"\n',
     "[alarms] memory_high_watermark: expected a fraction of RAM such as 0.4, or bytes"),
    ('[alarms]\ndisk_free_limit = "50 parsecs"\n', "[alarms] disk_free_limit: expected"),
    ('[log]\nformat = "xml"\n', "[log] format: expected one of text, json, got 'xml'"),
    ('[log]\nlevel = "loud"\n', "[log] level: expected one of debug, info, warning, error"),
    ("[auth]\nloopback_users = [1]\n", "[auth] loopback_users: expected a list of strings"),
    ('[amqps]\ncert = "c.pem"\n', "[amqps] key: required when [amqps] cert (from "),
    ('[amqps]\ncert = "c.pem"\nkey = "k.pem"\nverify = "verify_peer"\n',
     "[amqps] ca: required when [amqps] verify (from "),
    ("[management]\ntls = true\n", "[management] tls (from "),
    ("[amqp]\nenabled = false\n", "the broker would accept no connections"),
])
def test_file_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    assert message in error_of(tmp_path, text)


def test_environment_and_flag_errors_name_their_source(tmp_path: Path) -> None:
    assert error_of(tmp_path, env={"LEVERET_AMQP_PORT": "abc"}) == (
        "LEVERET_AMQP_PORT: expected a port number 0-65535 (0: any free port), got 'abc'")
    assert error_of(tmp_path, flags={("limits", "heartbeat"): "-5"}) == (
        "--heartbeat: expected an integer 0-65535, got '-5'")
    missing = tmp_path / "nope.toml"
    with pytest.raises(cfg.ConfigError, match=f"cannot read config file {missing}"):
        cfg.load(missing, {})


def test_sizes_use_rabbitmq_units() -> None:
    assert cfg.threshold("50MB") == 50_000_000
    assert cfg.threshold("512MiB") == 512 << 20
    assert cfg.threshold("2G") == 2 << 30
    assert cfg.threshold("1000") == 1000
    assert cfg.threshold(0.4) == 0.4


def test_every_key_is_documented() -> None:
    doc = (ROOT / "docs/configuration.md").read_text()
    for key in cfg.KEYS:
        row = next((line for line in doc.splitlines()
                    if line.startswith(f"| `{key.name}` ") and f"`{key.env}`" in line), None)
        assert row is not None, f"{key.label} is not in docs/configuration.md"
        if key.flag:
            assert f"`{key.flag}`" in row, f"{key.flag} is not documented for {key.label}"


# -- `leveret serve --config` in a subprocess --------------------------------------------------

def serve(args: list[str], **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "leveret", "serve", *args],
                            stderr=subprocess.PIPE, text=True, **kwargs)  # type: ignore


def read_json_lines(proc: subprocess.Popen[str], until: str,
                    timeout: float = 20) -> list[dict[str, object]]:
    """JSON log lines up to and including the first whose message contains ``until``."""
    assert proc.stderr is not None
    lines: list[dict[str, object]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        entry = json.loads(line)  # every line is one JSON object
        lines.append(entry)
        if until in str(entry["message"]):
            return lines
    raise AssertionError(f"no log line with {until!r} in {lines}")


def test_serve_with_a_config_file(tmp_path: Path) -> None:
    config = write(tmp_path, f"""
[amqp]
port = 0
[management]
enabled = false
[storage]
data_dir = "{tmp_path / 'data'}"
[limits]
heartbeat = 7
[log]
format = "json"
""")
    proc = serve(["--config", str(config), "--log-level", "debug"])
    try:
        lines = read_json_lines(proc, "listening on amqp://")
        match = re.search(r"amqp://127\.0\.0\.1:(\d+)", str(lines[-1]["message"]))
        assert match
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", int(match.group(1)),
            client_properties={"connection_name": "config-test"}))
        assert conn._impl.params.heartbeat == 7  # offered in connection.tune
        conn.close()
        lines = read_json_lines(proc, "closing AMQP connection")
        opened = next(e for e in lines if e.get("event") == "connection_opened")
        assert opened["connection_name"] == "config-test" and opened["user"] == "guest"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert (tmp_path / "data").is_dir()
    finally:
        stop(proc)


def test_serve_refuses_a_bad_config_with_status_2(tmp_path: Path) -> None:
    config = write(tmp_path, '[amqp]\nport = "abc"\n')
    result = subprocess.run([sys.executable, "-m", "leveret", "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"{config}: [amqp] port: expected a port number 0-65535" in result.stderr
    result = subprocess.run([sys.executable, "-m", "leveret", "serve", "--port", "x"],
                            capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin", "LEVERET_AMQP_PORT": "1"})
    assert result.returncode == 2
    assert "--port: expected a port number" in result.stderr


def test_serve_loads_definitions_at_start(tmp_path: Path) -> None:
    from leveret.broker.access import hash_password

    definitions = {
        "users": [{"name": "app", "password_hash": hash_password("s3cret"),
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""}],
        "vhosts": [{"name": "/"}],
        "permissions": [{"user": "app", "vhost": "/", "configure": ".*", "write": ".*",
                         "read": ".*"}],
        "queues": [{"name": "orders", "vhost": "/", "durable": True, "auto_delete": False,
                    "arguments": {"x-max-length": 10}}],
        "exchanges": [{"name": "events", "vhost": "/", "type": "topic", "durable": True,
                       "auto_delete": False, "internal": False, "arguments": {}}],
        "bindings": [{"source": "events", "vhost": "/", "destination": "orders",
                      "destination_type": "queue", "routing_key": "order.*",
                      "arguments": {}}],
    }
    file = tmp_path / "definitions.json"
    file.write_text(json.dumps(definitions))
    proc = serve(["--port", "0", "--no-management", "--log-format", "json",
                  "--load-definitions", str(file), "--data-dir", str(tmp_path / "data")])
    try:
        lines = read_json_lines(proc, "listening on amqp://")
        assert any("imported definitions" in str(e["message"]) for e in lines)
        port = int(str(lines[-1]["message"]).rsplit(":", 1)[1].split()[0])
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", port, credentials=pika.PlainCredentials("app", "s3cret")))
        ch = conn.channel()
        ch.basic_publish("events", "order.created", b"{}")
        assert ch.queue_declare("orders", passive=True).method.message_count == 1
        conn.close()
    finally:
        stop(proc)
    (tmp_path / "bad.json").write_text('{"queues": [{"vhost": "/"}]}')  # a queue without name
    result = subprocess.run(
        [sys.executable, "-m", "leveret", "serve", "--port", "0", "--no-management",
         "--load-definitions", str(tmp_path / "bad.json"), "--data-dir",
         str(tmp_path / "data2")], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "cannot import definitions" in result.stderr and "bad.json" in result.stderr
