"""KPI definitions, label folding and the exposition built from counter rows."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.reporting import domain
from services.reporting.exposition import build_text
from services.reporting.service import LabelFolder


@pytest.mark.parametrize(("value", "category"), [(10, "promoter"), (9, "promoter"), (8, "passive"), (7, "passive"),
                                                 (6, "detractor"), (0, "detractor")])
def test_nps_categories(value, category):
    assert domain.nps_category(value) == category


def test_kpi_formulas():
    assert domain.nps(promoters=6, detractors=2, responses=10) == 40.0
    assert domain.nps(0, 0, 0) is None
    assert domain.ratio(3, 4) == 0.75 and domain.ratio(1, 0) is None
    assert domain.percentile([10.0, 20.0, 30.0, 40.0], 0.5) == 25.0
    assert domain.percentile([10.0, 20.0, 30.0, 40.0], 0.9) == pytest.approx(37.0)
    assert domain.percentile([], 0.5) is None


def test_received_increments_by_scale():
    nps = domain.received_increments(channel="web", location="s1", touchpoint="t", scale="nps", value=9)
    assert [(i.metric, i.key) for i in nps] == [(domain.FEEDBACK, ""), (domain.NPS, "promoter")]
    csat = domain.received_increments(channel="web", location="s1", touchpoint="t", scale="csat", value=4)
    assert [(i.metric, i.key) for i in csat] == [(domain.FEEDBACK, ""), (domain.CSAT, "4")]
    stars = domain.received_increments(channel="web", location="s1", touchpoint="t", scale="stars", value=4)
    assert [i.metric for i in stars] == [domain.FEEDBACK]  # stars are not CSAT answers


def test_scored_increments_and_merge_sum_and_sort():
    incs = domain.scored_increments(channel="kiosk", location="a", touchpoint="b", mot=-2, negative=True)
    assert {i.metric for i in incs} == {domain.SCORED, domain.MOT, domain.NEGATIVE}
    merged = domain.merge(incs + incs)
    assert [i.delta for i in merged] == [2.0, 2.0, 2.0]
    assert [i.series for i in merged] == sorted(i.series for i in merged)


def test_histogram_observation_bucket_and_sum():
    incs = domain.observation(domain.ACK, 200.0, domain.ACK_BUCKETS, -3)
    assert [(i.key, i.delta, i.severity) for i in incs] == [("300.0", 1.0, "-3"), ("sum", 200.0, "-3")]
    assert domain.bucket_key(10**7, domain.ACK_BUCKETS) == "+Inf"
    assert domain.bucket_key(60, domain.ACK_BUCKETS) == "60.0"  # upper bounds are inclusive (le)


async def test_label_folder_uses_known_labels_and_folds_when_full():
    folder = LabelFolder({"location": 2, "touchpoint": 1})
    folder.load([{"dimension": "location", "value": "a", "label": "a"},
                 {"dimension": "location", "value": "b", "label": "b"}])
    assert await folder.label(None, "location", "a") == "a"
    assert await folder.label(None, "location", "zzz") == domain.OTHER  # full: no database round trip
    assert await folder.label(None, "location", None) == domain.UNKNOWN


def _scrape(rows, open_rows=()):
    text = build_text(rows, open_rows).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}, text


def row(metric, *, channel="", location="", touchpoint="", severity="", key="", value=1.0):
    return {"metric": metric, "channel": channel, "location": location, "touchpoint": touchpoint,
            "severity": severity, "key": key, "value": value}


def test_label_values_are_escaped():
    samples, _ = _scrape([row(domain.FEEDBACK, channel="web", location='A "quoted"\\ name\nnext', touchpoint="t")])
    assert samples[("cx_feedback_total", frozenset({"channel": "web", "location": 'A "quoted"\\ name\nnext',
                                                     "touchpoint": "t"}.items()))] == 1


def test_exposition_names_labels_and_zero_filled_series():
    samples, text = _scrape([
        row(domain.FEEDBACK, channel="kiosk", location="上海", touchpoint="checkout", value=3),
        row(domain.NPS, channel="web", key="promoter", value=2),
        row(domain.ACK, severity="-2", key="300.0", value=1),
        row(domain.ACK, severity="-2", key="3600.0", value=2),
        row(domain.ACK, severity="-2", key="+Inf", value=1),
        row(domain.ACK, severity="-2", key="sum", value=9000.0),
    ], [{"severity": -2, "n": 4}])
    assert samples[("cx_feedback_total", frozenset({"channel": "kiosk", "location": "上海",
                                                     "touchpoint": "checkout"}.items()))] == 3
    assert samples[("cx_nps_responses_total", frozenset({"channel": "web", "category": "promoter"}.items()))] == 2
    # fixed label sets exist at zero so rules combining them never lose a side
    assert samples[("cx_nps_responses_total", frozenset({"channel": "email",
                                                          "category": "detractor"}.items()))] == 0
    assert sum(1 for (n, _) in samples if n == "cx_mot_responses_total") == len(domain.CHANNELS) * 7
    # cumulative buckets
    bucket = lambda le: samples[("cx_alert_ack_seconds_bucket", frozenset({"severity": "-2", "le": le}.items()))]  # noqa: E731
    assert (bucket("60.0"), bucket("300.0"), bucket("3600.0"), bucket("+Inf")) == (0, 1, 3, 4)
    assert samples[("cx_alert_ack_seconds_count", frozenset({"severity": "-2"}.items()))] == 4
    assert samples[("cx_alert_ack_seconds_sum", frozenset({"severity": "-2"}.items()))] == 9000.0
    assert samples[("cx_alerts_open", frozenset({"severity": "-2"}.items()))] == 4
    assert samples[("cx_alerts_open", frozenset({"severity": "-3"}.items()))] == 0
    assert "# TYPE cx_alert_ack_seconds histogram" in text
    assert "# TYPE cx_feedback_total counter" in text


def test_exposition_of_5000_label_combinations_is_fast():
    rows = [row(m, channel=c, location=f"loc-{i}", touchpoint=f"tp-{j}", value=i + j)
            for m in (domain.FEEDBACK, domain.SCORED, domain.NEGATIVE)
            for c in domain.CHANNELS[:5] for i in range(100) for j in range(10)]
    started = time.perf_counter()
    text = build_text(rows, [])
    elapsed = time.perf_counter() - started
    assert text.count(b"\ncx_feedback_total{") == 5000
    assert elapsed < 0.5, f"rendering 15,000 series took {elapsed:.3f}s"
    parsed = list(text_string_to_metric_families(text.decode()))  # valid exposition
    assert sum(len(f.samples) for f in parsed if f.name == "cx_negative_mot") == 5000
