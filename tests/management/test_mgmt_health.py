"""RabbitMQ's health-check endpoints, as Kubernetes probes and monitors call them: the same
status codes and body shapes from leveret and the reference RabbitMQ."""

from __future__ import annotations

import pytest
from mgmt_helpers import Api


def _status(api: Api, path: str) -> tuple[int, str]:
    reply = api.get(path)
    return reply.status, reply.json["status"]


@pytest.mark.parametrize("path", [
    "/api/health/checks/alarms",
    "/api/health/checks/local-alarms",
    "/api/health/checks/virtual-hosts",
    "/api/health/checks/node-is-quorum-critical",
    "/api/health/checks/node-is-mirror-sync-critical",
    "/api/health/checks/protocol-listener/amqp",
    "/api/health/checks/certificate-expiration/1/months",
    "/api/aliveness-test/%2F",
])
def test_healthy_checks_answer_ok_like_rabbitmq(api: Api, reference: Api, path: str) -> None:
    assert _status(api, path) == _status(reference, path) == (200, "ok")


def test_port_listener(api: Api, reference: Api) -> None:
    ours = api.get(f"/api/health/checks/port-listener/{api.amqp_port}")
    assert (ours.status, ours.json) == (200, {"status": "ok", "port": api.amqp_port})
    theirs = reference.get("/api/health/checks/port-listener/5673")
    assert theirs.status == 200 and theirs.json.keys() == ours.json.keys()
    ours, theirs = (a.get("/api/health/checks/port-listener/1") for a in (api, reference))
    assert ours.status == theirs.status == 503
    assert ours.json.keys() == theirs.json.keys() == {"status", "reason", "missing", "ports"}
    assert ours.json["reason"] == theirs.json["reason"] == "No active listener"
    assert api.amqp_port in ours.json["ports"]


def test_protocol_listener_missing(api: Api, reference: Api) -> None:
    ours, theirs = (a.get("/api/health/checks/protocol-listener/mqtt") for a in (api, reference))
    assert ours.status == theirs.status == 503
    assert ours.json.keys() == theirs.json.keys()
    assert "amqp" in ours.json["protocols"] and "http" in ours.json["protocols"]


def test_health_checks_need_credentials(api: Api) -> None:
    assert api.get("/api/health/checks/virtual-hosts", user="").status == 401


def test_certificate_expiration(tmp_path) -> None:
    """A certificate valid for 10 more days passes a one-week check and fails a one-month
    one, with RabbitMQ's body shape."""
    import shutil
    import subprocess

    from leveret.runtime.threaded import BrokerThread
    from leveret.server.tls import TLSConfig

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "10", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    with BrokerThread(management_port=0, tls=TLSConfig(certfile=cert, keyfile=key),
                      tls_port=0) as broker:
        api = Api(broker.broker.management_url, broker.port)
        assert _status(api, "/api/health/checks/certificate-expiration/1/weeks") == (200, "ok")
        reply = api.get("/api/health/checks/certificate-expiration/1/months")
        assert reply.status == 503 and reply.json["status"] == "failed"
        assert reply.json["expired"][0]["protocol"] == "amqp/ssl"
        assert _status(api, "/api/health/checks/protocol-listener/amqp/ssl") == (200, "ok")
        assert api.get("/api/health/checks/certificate-expiration/x/months").status == 400
