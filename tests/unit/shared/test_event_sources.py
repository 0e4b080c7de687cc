"""Which consumer trusts which sources: each event type names its producers, the producers
are the services whose runtime declares it, and each consumer accepts an event only from
them (SECURITY.md has the same table)."""

from __future__ import annotations

from keymoment.asyncapi import endpoints, runtimes
from shared.events import EVENT_TYPES, event_source

ERASURE_REQUESTED = {"com.keymoment.erasure.requested.v1": {"/keymoment/reporting"}}
TRUSTED = {
    "alerts": {"com.keymoment.feedback.received.v1": {"/keymoment/intake", "/keymoment/survey"}, **ERASURE_REQUESTED},
    "reporting": {
        "com.keymoment.feedback.received.v1": {"/keymoment/intake", "/keymoment/survey"},
        "com.keymoment.feedback.scored.v1": {"/keymoment/alerts"},
        "com.keymoment.alert.raised.v1": {"/keymoment/alerts"},
        "com.keymoment.alert.updated.v1": {"/keymoment/alerts"},
        "com.keymoment.survey.invitation.v1": {"/keymoment/survey"},
        **ERASURE_REQUESTED,
        "com.keymoment.erasure.applied.v1": {f"/keymoment/{s}" for s in ("intake", "survey", "alerts", "reporting")},
    },
    "survey": {
        "com.keymoment.survey.requested.v1": {"/keymoment/alerts"},
        "com.keymoment.feedback.received.v1": {"/keymoment/intake", "/keymoment/survey"},  # its triggers
        **ERASURE_REQUESTED,
    },
    "intake": {**ERASURE_REQUESTED},
}


def test_each_event_types_producers_are_the_services_that_produce_it():
    found = endpoints(runtimes())
    for event_type in EVENT_TYPES.values():
        assert event_type.producers, f"{event_type.type} names no producers: no consumer would trust it"
        assert set(event_type.producers) == found[event_type.topic]["send"], event_type.type
        assert event_type.sources == {event_source(p) for p in event_type.producers}


def test_each_consumer_trusts_the_sources_of_the_documented_table():
    trusted = {name: runtime.trusted_sources() for name, runtime in runtimes().items()}
    assert trusted == TRUSTED
