"""The query parameters of list endpoints: sort, sort_reverse, columns, pagination with
name / use_regex, and disable_stats."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mgmt_helpers import Api, q, unique
from mgmt_schemas import check


@pytest.fixture(scope="module")
def vhost(api: Api) -> Iterator[str]:
    name = unique("query")
    api.ok("PUT", f"/api/vhosts/{q(name)}", {})
    for queue in ("alpha", "beta", "gamma", "Delta"):
        api.ok("PUT", f"/api/queues/{q(name)}/{queue}", {"durable": queue == "beta"})
    yield name
    api.delete(f"/api/vhosts/{q(name)}")


def test_sorted_by_name_by_default(api: Api, vhost: str) -> None:
    names = [x["name"] for x in api.get(f"/api/queues/{q(vhost)}").json]
    assert names == ["Delta", "alpha", "beta", "gamma"]


def test_sort_and_reverse(api: Api, vhost: str) -> None:
    names = [x["name"] for x in api.get(f"/api/queues/{q(vhost)}?sort=name&sort_reverse=true"
                                        ).json]
    assert names == ["gamma", "beta", "alpha", "Delta"]
    first = api.get(f"/api/queues/{q(vhost)}?sort=durable&sort_reverse=true").json[0]
    assert first["name"] == "beta"


def test_columns(api: Api, vhost: str) -> None:
    rows = api.get(f"/api/queues/{q(vhost)}?columns=name,durable").json
    assert rows[0] == {"name": "Delta", "durable": False}
    api.ok("POST", f"/api/exchanges/{q(vhost)}/amq.default/publish", {
        "properties": {}, "routing_key": "alpha", "payload": "x",
        "payload_encoding": "string"})
    rows = api.get(f"/api/queues/{q(vhost)}?columns=name,message_stats.publish").json
    assert {"name": "alpha", "message_stats": {"publish": 1}} in rows
    assert api.get(f"/api/queues/{q(vhost)}/alpha?columns=name,messages").json == {
        "name": "alpha", "messages": 1}


def test_pagination(api: Api, vhost: str) -> None:
    page = check("page", api.get(f"/api/queues/{q(vhost)}?page=2&page_size=3").json)
    assert page["page"] == 2 and page["page_count"] == 2 and page["page_size"] == 3
    assert page["total_count"] == 4 and page["filtered_count"] == 4
    assert [x["name"] for x in page["items"]] == ["gamma"] and page["item_count"] == 1


def test_pagination_name_filter(api: Api, vhost: str) -> None:
    page = api.get(f"/api/queues/{q(vhost)}?page=1&name=DEL").json
    assert [x["name"] for x in page["items"]] == ["Delta"]  # case-insensitive substring
    assert page["filtered_count"] == 1 and page["total_count"] == 4
    page = api.get(f"/api/queues/{q(vhost)}?page=1&name=^(alpha|beta)$&use_regex=true").json
    assert [x["name"] for x in page["items"]] == ["alpha", "beta"]


def test_pagination_errors(api: Api, vhost: str) -> None:
    reply = api.get(f"/api/queues/{q(vhost)}?page=9&page_size=1")
    assert reply.status == 400
    assert reply.json == {"error": "page_out_of_range",
                          "reason": "Page out of range, page: 9 page size: 1, len: 4"}
    for bad in ("page=x", "page=0", "page=1&page_size=501"):
        reply = api.get(f"/api/queues/{q(vhost)}?{bad}")
        assert reply.json == {"error": "bad_request",
                              "reason": "Pagination parameters are invalid"}


def test_disable_stats(api: Api, vhost: str) -> None:
    row = api.get(f"/api/queues/{q(vhost)}?disable_stats=true&enable_queue_totals=true").json[0]
    assert "message_stats" not in row and "messages_details" not in row
    assert row["messages"] == 0
