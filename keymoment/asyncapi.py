"""The event contracts as an AsyncAPI 3.0 document (``deploy/asyncapi.yaml``).

Generated, never edited by hand, from what the code defines:

- channels: every topic of the registry (``shared.events.EVENT_TYPES``) with its
  Kafka key, and its ``<topic>.dlq`` dead-letter channel;
- messages: the CloudEvents binary-mode headers an :class:`~shared.events.Envelope`
  writes, and the JSON Schema of the pydantic payload model (``shared.contracts``);
- operations: which service sends and which receives each event, read from each
  service's runtime as its app factory wires it (``ServiceRuntime(produces=[...])``,
  ``runtime.consume(...)`` / ``runtime.consume_batches(...)``); consumers send what
  can never succeed to the topic's ``.dlq``.

    keymoment asyncapi            print the document
    keymoment asyncapi --write    update deploy/asyncapi.yaml
    keymoment asyncapi --check    exit 1 when deploy/asyncapi.yaml is stale

A test keeps the file in step with the models and validates it against the
official AsyncAPI 3.0.0 JSON Schema (vendored in tests/data/asyncapi/).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import models_json_schema

from shared.events import CONTENT_TYPE, EVENT_TYPES, SPEC_VERSION, Envelope, EventType, dlq_topic

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "deploy" / "asyncapi.yaml"
KAFKA_BINDING = "0.5.0"
SCHEMAS = "#/components/schemas/{model}"

# How each topic's Kafka key is built (the key decides the partition: events sharing it stay in order).
FEEDBACK_KEY = {
    "type": "string",
    "pattern": "^(customer:(id|email|phone):[0-9a-f]{32}|place:.+/.+)$",
    "description": "the customer when the feedback names one, as a pseudonym (never the contact): "
                   "`customer:<kind>:<HMAC-SHA256 of the id, else the lower-case email, else the phone's digits, under "
                   "PRIVACY_HASH_KEY, 32 hex digits>` - the same in every service; otherwise the place, "
                   "`place:<location>/<touchpoint>` (`-` for a missing part): one customer's feedback stays in order.",
    "examples": ["customer:id:5f2b8e61c0a94d7e8b13a6f0d2c4e9b7", "place:store-12/checkout"],
}
ALERT_KEY = {
    "type": "string",
    "pattern": "^alert:.+$",
    "description": "`alert:<alert_id>`: everything about one alert stays in order.",
    "examples": ["alert:8c1c0f6e-3f39-4a8e-9a51-2f0d1b0f4a11"],
}
ERASURE_KEY = {
    "type": "string",
    "pattern": "^erasure:.+$",
    "description": "`erasure:<erasure_id>`: a request and its reports stay in order.",
    "examples": ["erasure:0b6f3c1e-8a52-4b4f-b1c7-7e2a9d4c6f80"],
}
KEYS: dict[str, dict[str, Any]] = {
    "feedback.received.v1": FEEDBACK_KEY,
    "feedback.scored.v1": {**FEEDBACK_KEY, "description": "the same as the feedback's key on `feedback.received.v1`."},
    "alert.raised.v1": ALERT_KEY,
    "alert.updated.v1": ALERT_KEY,
    "survey.requested.v1": {**ALERT_KEY, "description": "`alert:<alert_id>` of the alert whose recovery is surveyed."},
    "erasure.requested.v1": ERASURE_KEY,
    "erasure.applied.v1": ERASURE_KEY,
    "survey.invitation.v1": {
        "type": "string", "pattern": "^invitation:.+$",
        "description": "`invitation:<invitation_id>`: the steps of one invitation stay in order.",
        "examples": ["invitation:3f0c2a9e-5b1d-5c47-9d1e-0a6b2f8c4d17"],
    },
    "survey.responded.v1": {
        "type": "string", "pattern": "^survey:.+$",
        "description": "`survey:<survey_id>`: one survey's responses stay in order.",
        "examples": ["survey:post-visit"],
    },
}
SUBJECTS = {
    "feedback.received.v1": "The feedback id.",
    "feedback.scored.v1": "The feedback id.",
    "alert.raised.v1": "The alert id.",
    "alert.updated.v1": "The alert id.",
    "survey.requested.v1": "The alert id.",
    "erasure.requested.v1": "The erasure id.",
    "erasure.applied.v1": "The erasure id.",
    "survey.invitation.v1": "The invitation id.",
    "survey.responded.v1": "The response id.",
}
# Headers the consumer runner (shared.kafka) adds to the original ones when it dead-letters a message.
DLQ_HEADERS = {
    "dlq_source_topic": "Topic the message was consumed from.",
    "dlq_source_partition": "Its partition (decimal).",
    "dlq_source_offset": "Its offset (decimal).",
    "dlq_consumer_group": "Consumer group (the service) that gave up on it.",
    "dlq_reason": "invalid (not a valid event), unexpected_type (a type not expected on that topic), untrusted_source "
                  "(a source not among its type's producers), permanent (its data can never be stored) or unexpected "
                  "(an unexplained failure that persisted).",
    "dlq_error": "Why it can never succeed (at most 2,000 characters).",
    "dlq_failed_at": "When it was dead-lettered (ISO 8601).",
}


# ---------------------------------------------------------------------------- who sends / receives
def runtimes() -> dict[str, Any]:
    """Each service's :class:`~shared.runtime.ServiceRuntime` as its app factory wires it
    (built, never started: nothing is connected)."""
    from keymoment.settings_doc import settings_classes  # noqa: PLC0415 - imports every service

    return {
        name: importlib.import_module(f"services.{name}.app").create_app(cls(keymoment_env="test")).state.runtime
        for name, cls in settings_classes().items()
    }


def endpoints(services: Mapping[str, Any] | None = None) -> dict[str, dict[str, set[str]]]:
    """``{topic: {"send": {service, ...}, "receive": {service, ...}}}`` from what each service's
    runtime declares: ``produces=[...]`` and its ``consume`` / ``consume_batches`` handlers."""
    services = runtimes() if services is None else services
    found = {et.topic: {"send": set(), "receive": set()} for et in EVENT_TYPES.values()}
    for name, runtime in services.items():
        for event_type in runtime.produces:
            found[event_type.topic]["send"].add(name)
        for event_type in runtime.consumes:
            found[event_type.topic]["receive"].add(name)
    lonely = [topic for topic, ends in found.items() if not ends["send"]]
    if lonely:
        raise RuntimeError(f"no service produces {', '.join(lonely)} (ServiceRuntime(produces=[...]))")
    return found


# ---------------------------------------------------------------------------- the document
def _camel(topic: str) -> str:
    """``feedback.received.v1`` -> ``feedbackReceivedV1`` (ids must be word characters)."""
    head, *rest = topic.replace(".", " ").split()
    return head + "".join(word.capitalize() for word in rest)


def _headers(event_type: EventType) -> dict[str, Any]:
    """The CloudEvents headers exactly as :meth:`Envelope.headers` writes them."""
    sample = Envelope.new(event_type, event_type.model.model_construct(), source="/keymoment/x", key=None,
                          time=datetime(2026, 1, 1, tzinfo=UTC))
    always = [name for name, _ in sample.headers()]
    written = always + [n for n, _ in Envelope.new(event_type, event_type.model.model_construct(), source="/x",
                                                   key=None, subject="s").headers() if n not in always]
    described = {
        "ce_specversion": {"type": "string", "const": SPEC_VERSION, "description": "CloudEvents spec version."},
        "ce_id": {"type": "string", "minLength": 1,
                  "description": "Unique event id; consumers deduplicate on it (delivery is at-least-once)."},
        "ce_source": {"type": "string", "format": "uri-reference",
                      "description": "The producing service, `/keymoment/<service>`."},
        "ce_type": {"type": "string", "const": event_type.type, "description": "The event type (versioned)."},
        "ce_time": {"type": "string", "format": "date-time", "description": "When it happened (ISO 8601)."},
        "ce_subject": {"type": "string", "description": SUBJECTS.get(event_type.topic, "What the event is about.")},
        "content-type": {"type": "string", "const": CONTENT_TYPE, "description": "Media type of the value."},
    }
    missing = [name for name in written if name not in described]
    if missing:
        raise RuntimeError(f"Envelope writes headers this document does not describe: {missing}")
    return {"type": "object", "required": always,
            "properties": {name: described[name] for name in written}}


def build(services: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document as a dict (``services``: runtimes to read, default the real ones)."""
    ends = endpoints(services)
    event_types = list(EVENT_TYPES.values())  # the registry's order: feedback first, as it flows
    _, definitions = models_json_schema([(et.model, "validation") for et in event_types], ref_template=SCHEMAS)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for et in event_types:
        cid, model = _camel(et.topic), et.model.__name__
        receivers, senders = sorted(ends[et.topic]["receive"]), sorted(ends[et.topic]["send"])
        messages[cid] = {
            "name": et.type,
            "title": model,
            "summary": (et.model.__doc__ or "").strip().splitlines()[0].replace("``", "`"),
            "contentType": CONTENT_TYPE,
            "headers": _headers(et),
            "payload": {"$ref": SCHEMAS.format(model=model)},
            "bindings": {"kafka": {"key": KEYS[et.topic], "bindingVersion": KAFKA_BINDING}},
        }
        channels[cid] = {
            "address": et.topic,
            "title": et.topic,
            "description": f"CloudEvents type `{et.type}`. Sent by {', '.join(senders)}; "
                           f"received by {', '.join(receivers) or 'no service'}. Kafka key: "
                           + KEYS[et.topic]["description"],
            "messages": {cid: {"$ref": f"#/components/messages/{cid}"}},
            "bindings": {"kafka": {"topic": et.topic, "bindingVersion": KAFKA_BINDING}},
        }
        message_ref = [{"$ref": f"#/channels/{cid}/messages/{cid}"}]
        for service in senders:
            operations[f"{service}Sends{cid[0].upper()}{cid[1:]}"] = {
                "action": "send", "channel": {"$ref": f"#/channels/{cid}"}, "messages": message_ref,
                "summary": f"{service} publishes {et.topic}.",
            }
        for service in receivers:
            operations[f"{service}Receives{cid[0].upper()}{cid[1:]}"] = {
                "action": "receive", "channel": {"$ref": f"#/channels/{cid}"}, "messages": message_ref,
                "summary": f"{service} consumes {et.topic} (consumer group `{service}`).",
                "bindings": {"kafka": {"groupId": {"type": "string", "enum": [service]},
                                       "bindingVersion": KAFKA_BINDING}},
            }
        if receivers:
            dlq = f"{cid}Dlq"
            channels[dlq] = {
                "address": dlq_topic(et.topic),
                "title": dlq_topic(et.topic),
                "description": f"Dead letters of `{et.topic}`: messages a consumer can never process, unchanged, "
                               "with headers naming where they came from and why. Read by people, not services.",
                "messages": {"deadLetter": {"$ref": "#/components/messages/deadLetter"}},
                "bindings": {"kafka": {"topic": dlq_topic(et.topic), "bindingVersion": KAFKA_BINDING}},
            }
            for service in receivers:
                operations[f"{service}DeadLetters{cid[0].upper()}{cid[1:]}"] = {
                    "action": "send", "channel": {"$ref": f"#/channels/{dlq}"},
                    "messages": [{"$ref": f"#/channels/{dlq}/messages/deadLetter"}],
                    "summary": f"{service} dead-letters a {et.topic} message that can never succeed "
                               "(transient failures are retried, never dead-lettered).",
                }
    messages["deadLetter"] = {
        "name": "dead-letter",
        "title": "Dead letter",
        "summary": "The original message (key, value and headers unchanged) plus where it failed and why.",
        "headers": {"type": "object", "required": sorted(DLQ_HEADERS),
                    "properties": {name: {"type": "string", "description": text} for name, text in DLQ_HEADERS.items()},
                    "additionalProperties": {"description": "The original message's headers (`ce_*`, content-type)."}},
        "payload": {"description": "The original value, byte for byte (it may be invalid: that is why it is here)."},
        "bindings": {"kafka": {"key": {"type": "string", "description": "The original key."},
                               "bindingVersion": KAFKA_BINDING}},
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Keymoment events",
            "version": importlib.metadata.version("keymoment"),
            "description": "Every event Keymoment services exchange over Kafka: a CloudEvents 1.0 event in Kafka "
                           "binary mode (attributes as `ce_*` headers, JSON data as the value), one versioned "
                           "pydantic model per type (`shared/contracts.py`, `shared/events.py`). Delivery is "
                           "at-least-once; consumers deduplicate on `ce_id`. Topic names get the "
                           "`KAFKA_TOPIC_PREFIX` setting in front. Generated by `keymoment asyncapi`; do not edit.",
            "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "dev": {"host": "127.0.0.1:9092", "protocol": "kafka",
                    "description": "The broker `make dev` starts; production uses `KAFKA_BOOTSTRAP_SERVERS`."},
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": definitions["$defs"]},
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # written out in full: no &anchors for readers to chase


def render(services: Mapping[str, Any] | None = None) -> str:
    header = ("# Generated by `keymoment asyncapi --write` from shared/events.py, shared/contracts.py and what\n"
              "# each service's runtime produces and consumes. Do not edit: change the code and regenerate.\n")
    return header + yaml.dump(build(services), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="keymoment asyncapi", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"update {DOCUMENT.relative_to(ROOT)}")
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not DOCUMENT.exists() or DOCUMENT.read_text(encoding="utf-8") != text:
            print(f"{DOCUMENT.relative_to(ROOT)} is stale: run `keymoment asyncapi --write`", file=sys.stderr)
            return 1
        return 0
    if args.write:
        DOCUMENT.write_text(text, encoding="utf-8")
        print(f"written {DOCUMENT.relative_to(ROOT)}")
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
