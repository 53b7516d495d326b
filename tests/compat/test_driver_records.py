"""The compat driver's recording rules, without a broker: what two correct brokers may
choose differently must record the same."""

from __future__ import annotations

from amqp_driver import method_fields, word_set

from leveret.amqp import spec


def test_mechanisms_and_locales_are_compared_as_sets() -> None:
    a = spec.ConnectionStart(mechanisms=b"AMQPLAIN PLAIN", locales=b"en_US")
    b = spec.ConnectionStart(mechanisms=b"PLAIN AMQPLAIN", locales=b"en_US")
    assert method_fields(a) == method_fields(b)
    assert method_fields(a)["mechanisms"] == [b"AMQPLAIN", b"PLAIN"]
    c = spec.ConnectionStart(mechanisms=b"PLAIN", locales=b"en_US")
    assert method_fields(a) != method_fields(c)


def test_a_malformed_word_list_is_recorded_as_it_is() -> None:
    assert word_set(b"PLAIN  AMQPLAIN") == [b"PLAIN  AMQPLAIN"]
    assert word_set(b"PLAIN PLAIN") == [b"PLAIN PLAIN"]
    assert word_set(b"") == [b""]
