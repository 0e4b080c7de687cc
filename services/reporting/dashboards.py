"""Grafana dashboards of Keymoment as code.

``python -m services.reporting.dashboards deploy/grafana/dashboards`` writes
``cx-overview.json`` and ``cx-operations.json``; a test keeps the committed
files equal to this output, and the real-Prometheus test evaluates every
panel query. Stable uids; the datasource is referenced by its uid.

KPI series are exposed identically by every reporting replica, so each query
collapses replicas with ``max without(instance, pod)`` before summing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DATASOURCE = {"type": "prometheus", "uid": "keymoment-prometheus"}
DEDUP = "max without(instance, pod)"
CH = 'channel=~"$channel"'
PLACE = 'channel=~"$channel", location=~"$location"'


def _sel(selector: str) -> str:
    return f"{{{selector}}}" if selector else ""


def inc(metric: str, selector: str, window: str = "$__range") -> str:
    return f"{DEDUP} (increase({metric}{_sel(selector)}[{window}]))"


def rate(metric: str, selector: str, window: str = "$__rate_interval") -> str:
    return f"{DEDUP} (rate({metric}{_sel(selector)}[{window}]))"


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict:
    t = {"datasource": DATASOURCE, "refId": ref, "expr": expr, "legendFormat": legend or "__auto"}
    if instant:
        t["instant"] = True
        t["range"] = False
    return t


class Layout:
    def __init__(self) -> None:
        self.panels: list[dict] = []
        self.x = 0
        self.y = 0
        self.row_h = 0

    def add(self, title: str, kind: str, targets: list[dict], *, w: int = 6, h: int = 6, unit: str | None = None,
            description: str = "", decimals: int | None = None, extra: dict | None = None) -> None:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        defaults: dict = {}
        if unit:
            defaults["unit"] = unit
        if decimals is not None:
            defaults["decimals"] = decimals
        panel = {
            "id": len(self.panels) + 1, "type": kind, "title": title, "description": description,
            "datasource": DATASOURCE, "gridPos": {"x": self.x, "y": self.y, "w": w, "h": h},
            "targets": targets, "fieldConfig": {"defaults": defaults, "overrides": []}, "options": {},
        }
        if kind == "stat":
            panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                                "colorMode": "value", "graphMode": "none", "textMode": "auto"}
        panel.update(extra or {})
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def variable(name: str, label: str, query: str) -> dict:
    return {
        "name": name, "label": label, "type": "query", "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"}, "definition": query,
        "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "sort": 1,
    }


def dashboard(uid: str, title: str, description: str, layout: Layout, variables: list[dict], time_from: str) -> dict:
    return {
        "uid": uid, "title": title, "description": description, "tags": ["keymoment"],
        "timezone": "browser", "schemaVersion": 39, "version": 1, "editable": False, "refresh": "30s",
        "time": {"from": time_from, "to": "now"}, "graphTooltip": 1,
        "templating": {"list": variables}, "annotations": {"list": []}, "links": [], "panels": layout.panels,
    }


def overview() -> dict:
    lay = Layout()
    nps_all = f"sum({inc('cx_nps_responses_total', CH)})"
    lay.add("NPS", "stat", [target(
        f'100 * (sum({inc("cx_nps_responses_total", CH + ", category=" + chr(34) + "promoter" + chr(34))})'
        f' - sum({inc("cx_nps_responses_total", CH + ", category=" + chr(34) + "detractor" + chr(34))}))'
        f" / ({nps_all} > 0)", "NPS")],
        decimals=0, description="% promoters (9-10) - % detractors (0-6) among NPS answers in the time range.")
    lay.add("CSAT (share of 4-5)", "stat", [target(
        f'sum({inc("cx_csat_responses_total", CH + ", score=~" + chr(34) + "4|5" + chr(34))})'
        f" / (sum({inc('cx_csat_responses_total', CH)}) > 0)", "CSAT")], unit="percentunit", decimals=1,
        description="Share of CSAT answers that are 4 or 5 in the time range.")
    weighted = " + ".join(
        f"({score}) * sum({inc('cx_mot_responses_total', CH + ', score=' + chr(34) + str(score) + chr(34))})"
        for score in (3, 2, 1, -1, -2, -3))
    lay.add("Mean moment of truth", "stat", [target(
        f"({weighted}) / (sum({inc('cx_mot_responses_total', CH)}) > 0)", "mean MOT")], decimals=2,
        description="Mean Carlzon score (-3..+3) of the feedback in the time range.")
    lay.add("Negative-MOT rate", "stat", [target(
        f"sum({inc('cx_negative_mot_total', PLACE)}) / (sum({inc('cx_mot_scored_total', PLACE)}) > 0)",
        "negative")], unit="percentunit", decimals=1,
        description="Share of scored feedback that was a negative moment of truth in the time range.")
    lay.add("Feedback by channel", "timeseries", [target(
        f"sum by (channel) ({rate('cx_feedback_total', PLACE)}) * 60", "{{channel}}")], w=12, h=8, unit="short",
        description="Feedback received per minute.")
    lay.add("MOT distribution", "barchart", [target(
        f"sum by (score) ({inc('cx_mot_responses_total', CH)})", "{{score}}", instant=True)], w=12, h=8,
        extra={"options": {"xField": "score"}}, description="Feedback by moment-of-truth score in the time range.")
    lay.add("NPS by channel (1 day)", "timeseries", [target('channel:cx_nps:1d{channel=~"$channel"}', "{{channel}}")],
            w=12, h=8, description="Recording rule channel:cx_nps:1d.")
    lay.add("CSAT by channel (1 day)", "timeseries", [target(
        'channel:cx_csat_satisfied_ratio:1d{channel=~"$channel"}', "{{channel}}")], w=12, h=8, unit="percentunit")
    lay.add("Negative-MOT rate by location (1 hour)", "timeseries", [target(
        f"sum by (location) ({inc('cx_negative_mot_total', PLACE, '1h')})"
        f" / (sum by (location) ({inc('cx_mot_scored_total', PLACE, '1h')}) > 0)", "{{location}}")],
        w=24, h=8, unit="percentunit")
    lay.add("Open alerts", "stat", [target(
        f"sum by (severity) ({DEDUP} (cx_alerts_open))", "severity {{severity}}")], w=6,
        description="Alerts not yet resolved, by severity (MOT score that raised them).")
    for q in ("0.5", "0.9"):
        lay.add(f"Time to acknowledge p{int(float(q) * 100)}", "stat", [target(
            f"histogram_quantile({q}, sum by (le) ({inc('cx_alert_ack_seconds_bucket', '')}))", "ack")],
            w=4, unit="s", description="From an alert being raised to its first acknowledgement, in the time range.")
    lay.add("Time to resolve p90", "stat", [target(
        f"histogram_quantile(0.9, sum by (le) ({inc('cx_alert_resolve_seconds_bucket', '')}))", "resolve")],
        w=4, unit="s")
    lay.add("SLA breaches", "stat", [target(f"sum({inc('cx_alert_sla_breaches_total', '')})", "breaches")], w=6,
            decimals=0, description="Alerts not acknowledged within their SLA in the time range.")
    lay.add("Time to acknowledge (1 day)", "timeseries", [
        target("cx:alert_ack_seconds:p50_1d", "p50"), target("cx:alert_ack_seconds:p90_1d", "p90", ref="B")],
        w=12, h=8, unit="s")
    lay.add("Alerts raised and SLA breaches", "timeseries", [
        target(f"sum by (severity) ({rate('cx_alerts_raised_total', '')}) * 3600", "raised {{severity}}"),
        target(f"sum({rate('cx_alert_sla_breaches_total', '')}) * 3600", "SLA breaches", ref="B")],
        w=12, h=8, unit="short", description="Per hour.")
    surveys(lay)
    variables = [
        variable("channel", "Channel", "label_values(cx_mot_responses_total, channel)"),
        variable("location", "Location", 'label_values(cx_feedback_total{channel=~"$channel"}, location)'),
    ]
    return dashboard("keymoment-cx-overview", "Keymoment · Customer experience",
                     "How satisfied customers are, per channel and location, and how fast negative moments are "
                     "recovered.", lay, variables, "now-24h")


def surveys(lay: Layout) -> None:
    """The survey funnel and recovery effectiveness (issue 15)."""
    lay.add("Survey funnel", "barchart", [target(
        f"sum by (step) ({inc('cx_survey_invitations_total', '')})", "{{step}}", instant=True)], w=8, h=8,
        extra={"options": {"xField": "step"}},
        description="Invitations in the time range by the step they reached: invited (the contact rules let it go), "
                    "delivered, opened, started, completed, unsubscribed.")
    lay.add("Survey response rate", "timeseries", [target(
        "survey:cx_survey_response_rate:1d", "{{survey}}")], w=8, h=8, unit="percentunit",
        description="Per survey, completed / delivered invitations over the last day (recording rule).")
    lay.add("Invitations skipped by reason", "barchart", [target(
        f"sum by (reason) ({inc('cx_survey_skipped_total', '')})", "{{reason}}", instant=True)], w=8, h=8,
        extra={"options": {"xField": "reason"}},
        description="Invitations the contact rules skipped in the time range: unsubscribed, suppressed, no_address, "
                    "frequency, min_interval, quiet_hours.")
    recovery = 'location=~"$location"'
    answers = f"sum by (team) ({inc('cx_recovery_answers_total', recovery)})"
    lay.add("Recovery: share recovered to MOT ≥ +1, by team", "bargauge", [target(
        f"sum by (team) ({inc('cx_recovery_answers_total', recovery + ', score=~' + chr(34) + '1|2|3' + chr(34))})"
        f" / ({answers} > 0)", "{{team}}", instant=True)], w=12, h=8, unit="percentunit",
        description="Of the answers to recovery surveys in the time range, the share at MOT +1 or better.")
    def weighted(label: str, values: tuple[int, ...]) -> str:
        return " + ".join(
            f"({v}) * sum by (location) ({inc('cx_recovery_answers_total', f'{recovery}, {label}={chr(34)}{v}{chr(34)}')})"
            for v in values)

    after, before = weighted("score", (3, 2, 1, -1, -2, -3)), weighted("severity", (-1, -2, -3))
    lay.add("Recovery: mean MOT change, by location", "bargauge", [target(
        f"(({after}) - ({before})) / (sum by (location) ({inc('cx_recovery_answers_total', recovery)}) > 0)",
        "{{location}}", instant=True)], w=12, h=8, decimals=2,
        description="Mean of (the recovery answer's MOT - the MOT of the negative feedback that raised the alert) "
                    "in the time range.")


def operations() -> dict:
    lay = Layout()
    lay.add("Ingest rate", "timeseries", [
        target(f"sum by (channel) ({rate('cx_feedback_total', PLACE)})", "{{channel}}"),
        target('sum by (service) (rate(keymoment_http_requests_total{status=~"2.."}[$__rate_interval]))',
               "{{service}} HTTP 2xx", ref="B")],
        w=12, h=8, unit="reqps", description="Feedback counted by reporting, and successful HTTP requests per service.")
    lay.add("Consumer lag", "timeseries", [target(
        "sum by (group, topic) (keymoment_consumer_lag_messages)", "{{group}} {{topic}}")], w=12, h=8,
        unit="short", description="Messages behind the end of each topic, per consumer group.")
    lay.add("Events consumed", "timeseries", [target(
        'sum by (group, topic) (rate(keymoment_consumer_events_total{outcome="ok"}[$__rate_interval]))',
        "{{group}} {{topic}}")], w=12, h=8, unit="short")
    lay.add("Dead-lettered events", "timeseries", [target(
        'sum by (group, topic) (increase(keymoment_consumer_events_total{outcome="dead_lettered"}'
        '[$__rate_interval])) or vector(0)', "{{group}} {{topic}}")], w=12, h=8, unit="short",
        description="Events that can never be processed, sent to <topic>.dlq.")
    lay.add("HTTP 5xx ratio by service", "timeseries", [target(
        '(sum by (service) (rate(keymoment_http_requests_total{status=~"5.."}[$__rate_interval]))'
        " or sum by (service) (rate(keymoment_http_requests_total[$__rate_interval])) * 0)"
        " / sum by (service) (rate(keymoment_http_requests_total[$__rate_interval]))", "{{service}}")],
        w=12, h=8, unit="percentunit")
    lay.add("HTTP p95 latency by service", "timeseries", [target(
        "histogram_quantile(0.95, sum by (service, le) (rate(keymoment_http_request_duration_seconds_bucket"
        "[$__rate_interval])))", "{{service}}")], w=12, h=8, unit="s")
    lay.add("Outbox pending events", "timeseries", [target(
        "sum by (service) (keymoment_outbox_pending_events)", "{{service}}")], w=12, h=8, unit="short")
    lay.add("Event age at processing p95", "timeseries", [target(
        "histogram_quantile(0.95, sum by (group, le) (rate(keymoment_consumer_event_age_seconds_bucket"
        "[$__rate_interval])))", "{{group}}")], w=12, h=8, unit="s")
    lay.add("KPI snapshot age", "stat", [target(
        "time() - max(keymoment_reporting_snapshot_timestamp_seconds)", "age")], w=6, unit="s",
        description="How old the cx_* series served by reporting are.")
    lay.add("Targets up", "stat", [target("sum by (job) (up)", "{{job}}")], w=18)
    variables = [
        variable("channel", "Channel", "label_values(cx_mot_responses_total, channel)"),
        variable("location", "Location", 'label_values(cx_feedback_total{channel=~"$channel"}, location)'),
    ]
    return dashboard("keymoment-operations", "Keymoment · Operations",
                     "Ingest, consumers, dead letters, errors and latency of the Keymoment services.",
                     lay, variables, "now-1h")


DASHBOARDS = {"cx-overview.json": overview, "cx-operations.json": operations}


def render(build) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "deploy/grafana/dashboards")
    out.mkdir(parents=True, exist_ok=True)
    for name, build in DASHBOARDS.items():
        (out / name).write_text(render(build), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
