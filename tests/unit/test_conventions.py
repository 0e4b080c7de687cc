"""The conventions of README's "One convention per shape" that a machine can check:
metric names, Kafka kept to the runtime wiring, CloudEvents sources."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from keymoment.settings_doc import SERVICES, settings_classes
from services.reporting.exposition import build_text

ROOT = Path(__file__).resolve().parents[2]
STANDARD = ("process_", "python_")  # prometheus_client's own collectors, named by Prometheus convention
NOT_BASE_UNITS = re.compile(r"_(milliseconds|microseconds|ms|minutes|hours|days|kilobytes|megabytes|kb|mb|percent)(_|$)")
TIME_WORDS = re.compile(r"(duration|latency|_time|_age|_timestamp)")


def _settings_class(service: str) -> type:
    return settings_classes()[service]


def _families(service: str) -> list:
    app = importlib.import_module(f"services.{service}.app").create_app(_settings_class(service)(keymoment_env="test"))
    text = generate_latest(app.state.runtime.registry).decode()
    if service == "reporting":
        text += build_text([], []).decode()  # the cx_* series served from the database snapshot
    return list(text_string_to_metric_families(text))


@pytest.mark.parametrize("service", SERVICES)
def test_metric_names_follow_the_rule(service):
    """keymoment_ for the system's own health, cx_ for customer KPIs (reporting's snapshot only),
    counters end in _total, base units (seconds, bytes), time in seconds."""
    problems = []
    for family in _families(service):
        name = family.name
        if name.startswith(STANDARD):
            continue
        if not name.startswith(("keymoment_", "cx_")):
            problems.append(f"{name}: neither keymoment_ nor cx_")
        if name.startswith("cx_") and service != "reporting":
            problems.append(f"{name}: cx_ series are reporting's (customer KPIs from the event stream)")
        if NOT_BASE_UNITS.search(name):
            problems.append(f"{name}: not in a base unit")
        if TIME_WORDS.search(name) and not name.endswith("_seconds"):
            problems.append(f"{name}: a time is in seconds")
        if family.type == "counter":
            totals = [s.name for s in family.samples if not s.name.endswith("_created")]
            if not all(n.endswith("_total") for n in totals):
                problems.append(f"{name}: a counter's samples end in _total ({totals})")
    assert not problems, problems


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_service_modules_leave_kafka_to_the_runtime_wiring():
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in _imports(path) if n.split(".")[0] == "aiokafka"
                                            or n == "shared.kafka" or n.startswith("shared.kafka."))
        for path in (ROOT / "services").rglob("*.py")
    }
    assert {p: n for p, n in offenders.items() if n} == {}


@pytest.mark.parametrize("service", SERVICES)
def test_cloudevents_source_is_derived_from_the_service_name(service):
    assert _settings_class(service)(keymoment_env="test").event_source == f"/keymoment/{service}"


def test_intake_events_carry_its_source():
    from services.intake.service import to_event
    from shared.contracts import Channel, FeedbackIn

    event = to_event(FeedbackIn(channel=Channel.WEB, text="ok"), feedback_id="f-1", source="dev", privacy_key=b"k")
    assert event.source == "/keymoment/intake" and event.data.source == "dev"


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_applies_erasures_and_reports_them(service):
    """Each service of shared.privacy.ERASING_SERVICES (all of them) consumes erasure.requested.v1,
    publishes erasure.applied.v1 and has the privacy key and tables."""
    from shared.events import ERASURE_APPLIED, ERASURE_REQUESTED
    from shared.privacy import ERASING_SERVICES, PRIVACY_COMPONENT, PrivacySettings

    settings_cls = _settings_class(service)
    runtime = importlib.import_module(f"services.{service}.app").create_app(settings_cls(keymoment_env="test")).state.runtime
    assert service in ERASING_SERVICES and set(ERASING_SERVICES) == set(SERVICES)
    assert ERASURE_REQUESTED in runtime.consumes and ERASURE_APPLIED in runtime.produces
    assert issubclass(settings_cls, PrivacySettings) and "privacy_hash_key" in settings_cls.required_secrets
    assert PRIVACY_COMPONENT in settings_cls.migration_components()
    assert any(rule.table == "erased_subjects" for rule in runtime.retention)


def test_alerts_modules_stay_small_rooms():
    """Issue 16: alerts is split into modules named after what they do; none grows past 350 lines."""
    too_long = {
        str(path.relative_to(ROOT)): n
        for path in (ROOT / "services" / "alerts").rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 350
    }
    assert not too_long, f"split these modules: {too_long}"


def test_outbox_rows_and_session_state_are_written_one_way():
    """Events reach the outbox through ``shared/outbox.py`` only (``enqueue`` or ``insert_sql``), and
    nothing sets a session-level setting or advisory lock without marking the pooled connection
    (``shared/db.py``): the pool does not reset an unmarked one."""
    outbox = re.compile(r"INSERT\s+INTO\s+outbox\s*\(", re.I)
    session_set = re.compile(r"""["']\s*SET\s+(?!LOCAL\b)[a-z_.]+\s*(=|TO\b)""")  # a statement starting SET
    session_lock = re.compile(r"pg_(try_)?advisory_lock\s*\(", re.I)
    offenders = []
    for path in [*(ROOT / "services").rglob("*.py"), *(ROOT / "shared").rglob("*.py"), *(ROOT / "keymoment").rglob("*.py")]:
        rel = str(path.relative_to(ROOT))
        text = path.read_text(encoding="utf-8")
        if outbox.search(text) and rel != "shared/outbox.py":
            offenders.append(f"{rel}: writes outbox rows itself")
        if session_set.search(text):
            offenders.append(f"{rel}: a session-level SET")
        for match in session_lock.finditer(text):
            before = text[max(0, match.start() - 400):match.start()]
            if "mark_session_state" not in before:
                offenders.append(f"{rel}: a session advisory lock without mark_session_state()")
    assert offenders == []
