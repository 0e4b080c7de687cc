"""Issue 11 in alerts, on the real service (PostgreSQL, the broker, SMTP): a route's
min_confidence decides text-only alerts; managers' verdicts through the API and the email-link
page (scoped, replacing, never moving the alert); and the loop's end: verdicts recorded through
the API exported by ``keymoment scoring export-verdicts`` and taken by ``keymoment scoring train``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from services.alerts.scoring import Scorer
from tests.integration.alerts.support import (
    alerts_app,
    database,
    feedback,
    plain,
    producer,
    settings,
    smtp_server,
    wait_mail,
)
from tests.support.services import wait_until
from tests.unit.alerts.scored_texts import mild, routes, uncertain_negative

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer dev-admin-token"}
ROOT = Path(__file__).resolve().parents[3]


async def test_a_routes_min_confidence_decides_text_only_alerts_and_ratings_alert_anyway(
    service_env, database_url, tmp_path
):
    scorer = Scorer.load()
    (negative, negative_score), (calm, calm_score) = uncertain_negative(scorer), mild(scorer)
    p_neg, p_mild = negative_score.p_negative, calm_score.p_negative
    strict, eager = round((p_neg + 1) / 2, 4), round(p_mild - 0.05, 4)
    path = tmp_path / "routes.yaml"
    path.write_text(routes(strict=strict, eager=eager), encoding="utf-8")
    with smtp_server() as smtp:
        s = settings(service_env, smtp, alerts_routes_file=path)
        async with alerts_app(s, scorer=scorer), producer(s) as send, database(database_url) as db:
            held = feedback(text=negative, location="strict-lounge")
            alerted = feedback(text=negative, location="gate-3")
            rated = feedback(text="Lovely stay, quick check-in", rating={"scale": "csat", "value": 1},
                             location="strict-suite")
            lowered = feedback(text=calm, location="eager-lobby")
            await send(held, alerted, rated, lowered)
            for event in (alerted, rated, lowered):
                await db.wait_alert(event.data.id)
            await wait_until(lambda: db.processed(held.id), what="the held feedback consumed")
            links = {r["feedback_id"]: r for r in await db.conn.fetch("SELECT * FROM alerts.alert_feedback")}
            alerts = {r["feedback_id"]: r for r in await db.alerts()}
            await wait_mail(smtp, 3)

    assert held.data.id not in links and set(alerts) == {alerted.data.id, rated.data.id, lowered.data.id}
    assert (alerts[alerted.data.id]["route"], alerts[rated.data.id]["route"]) == ("default", "strict")
    assert (links[rated.data.id]["forced_by"], links[alerted.data.id]["forced_by"]) == ("rating", None)
    assert links[alerted.data.id]["p_negative"] == pytest.approx(p_neg, abs=1e-4)
    low = links[lowered.data.id]
    assert (alerts[lowered.data.id]["severity"], alerts[lowered.data.id]["route"], low["mot"]) == (-1, "eager", -1)
    assert low["p_negative"] == pytest.approx(p_mild, abs=1e-4) and low["confidence"] == pytest.approx(p_mild, abs=1e-4)
    assert json.loads(low["cues"])[0] == f"route eager: min_confidence {eager:.2f}"
    assert sorted(r[0] for r in smtp.recipients) == ["desk@example.com", "desk@example.com", "dm@example.com"]


def _verdict_link(message, label: str) -> str:
    [url] = re.findall(rf"^.+ / {label}: http://alerts\.test(/l/\S+)$", plain(message), flags=re.M)
    return url


async def test_verdicts_through_the_api_and_the_email_link_page(service_env, database_url):
    text = "结账排队四十分钟，只开了一个收银台"
    with smtp_server() as smtp:
        s = settings(service_env, smtp)
        async with alerts_app(s) as app, producer(s) as send, database(database_url) as db, app.client() as http:
            complaint = feedback(text=text, rating={"scale": "csat", "value": 2}, location="store-7",
                                 touchpoint="checkout")
            other = feedback(rating={"scale": "mot", "value": -2}, location="PEK-T3")
            await send(complaint, other)
            alert_id = (await db.wait_alert(complaint.data.id))["alert_id"]
            await db.wait_alert(other.data.id)
            store = (await http.post("/v1/managers/store.ops@example.com/tokens", headers=ADMIN)).json()["token"]
            centre = (await http.post("/v1/managers/cc.supervisor@example.com/tokens", headers=ADMIN)).json()["token"]

            def verdict(body: dict, token: str | None = None, alert: str = alert_id):
                headers = {"Authorization": f"Bearer {token}"} if token else ADMIN
                return http.post(f"/v1/alerts/{alert}/verdict", headers=headers, json=body)

            assert (await verdict({"verdict": "correct"}, centre)).status_code == 403  # another team's alert
            assert (await http.post(f"/v1/alerts/{alert_id}/verdict", json={"verdict": "correct"})).status_code == 401
            assert (await verdict({"verdict": "correct"}, alert="no-such-alert")).status_code == 404
            assert (await verdict({"verdict": "maybe"})).status_code == 422
            foreign = await verdict({"verdict": "correct", "feedback_id": other.data.id})
            assert foreign.status_code == 422 and other.data.id in foreign.text

            mine = await verdict({"verdict": "false_alarm", "note": "收银台故障已修"}, store)
            assert mine.status_code == 200, mine.text
            assert {k: mine.json()[k] for k in ("feedback_id", "verdict", "decided_by", "via", "current")} == {
                "feedback_id": complaint.data.id, "verdict": "false_alarm", "decided_by": "store.ops@example.com",
                "via": "api", "current": True}
            assert (await verdict({"verdict": "correct"})).json()["decided_by"] == "admin"

            # the mail's verdict links: the page shows the feedback and records nothing; POST records as its recipient
            await wait_until(lambda: smtp.to("store.ops@example.com"), what="the store manager's mail")
            [mail] = smtp.to("store.ops@example.com")
            page = await http.get(_verdict_link(mail, "False alarm"))
            assert page.status_code == 200 and text in page.text and "store.ops@example.com" in page.text
            assert await db.conn.fetchval("SELECT count(*) FROM alerts.alert_verdicts") == 2
            done = await http.post(_verdict_link(mail, "False alarm"), data={"note": "误报", "who": "admin"})
            assert done.status_code == 200 and "Verdict recorded" in done.text
            # acknowledged since the mail: a loop link of it is refused, its verdict link still records
            assert (await http.post(f"/v1/alerts/{alert_id}/ack", headers=ADMIN)).json()["state_version"] == 1
            assert (await http.post(_verdict_link(mail, "Correct alert"))).status_code == 200

            detail = (await http.get(f"/v1/alerts/{alert_id}", headers={"Authorization": f"Bearer {store}"})).json()
            rows = await db.conn.fetch("SELECT * FROM alerts.alert_verdicts ORDER BY decided_at")

    assert (detail["status"], detail["state_version"]) == ("acknowledged", 1)  # only the ack moved it
    assert [(v["verdict"], v["decided_by"], v["via"], v["current"]) for v in detail["verdicts"]] == [
        ("false_alarm", "store.ops@example.com", "api", False), ("correct", "admin", "api", False),
        ("false_alarm", "store.ops@example.com", "email_link", False),
        ("correct", "store.ops@example.com", "email_link", True)]
    assert [h["action"] for h in detail["history"]].count("verdict") == 4
    assert {(r["text"], r["language"], r["feedback_id"]) for r in rows} == {(text, "zh", complaint.data.id)}
    score = json.loads(rows[0]["score"])
    assert score["forced_by"] == "rating" and score["p_negative"] is not None and rows[2]["note"] == "误报"


NEGATIVE = ["前台等了{}分钟没人理，太失望了", "The shuttle was {} minutes late and nobody apologised",
            "房间{}号空调坏了，投诉了也没人来修", "Charged twice for room {} and still waiting for the refund"]
POSITIVE = ["Room {} was spotless and the staff were lovely", "{}号房间很干净，早餐也不错",
            "Quick check-in at desk {}, friendly team", "第{}次入住，服务一如既往地好"]


async def test_verdicts_recorded_through_the_api_are_exported_and_train_a_model(service_env, database_url, tmp_path):
    """The operator loop, end to end: alerts -> managers' verdicts (API) -> export-verdicts
    -> keymoment scoring train."""
    pytest.importorskip("numpy")
    pytest.importorskip("scipy")
    texts = [(t.format(10 + i), True) for i, t in enumerate(NEGATIVE * 6)]
    texts += [(t.format(10 + i), False) for i, t in enumerate(POSITIVE * 6)]
    with smtp_server() as smtp:
        s = settings(service_env, smtp)
        async with alerts_app(s) as app, producer(s) as send, database(database_url) as db, app.client() as http:
            # every one alerts by its rating (whatever the model says of its text); a positive text with a
            # bad rating is what the manager calls a false alarm
            events = [(feedback(text=t, rating={"scale": "csat", "value": 2 if bad else 1}), bad) for t, bad in texts]
            no_text = feedback(rating={"scale": "mot", "value": -2})
            await send(*(e for e, _ in events), no_text)
            alert_ids = {}
            for event, _ in [*events, (no_text, None)]:
                alert_ids[event.data.id] = (await db.wait_alert(event.data.id))["alert_id"]
            changed_mind = events[0][0].data.id
            await http.post(f"/v1/alerts/{alert_ids[changed_mind]}/verdict", headers=ADMIN,
                            json={"verdict": "false_alarm"})
            for event, bad in [*events, (no_text, True)]:
                answer = await http.post(f"/v1/alerts/{alert_ids[event.data.id]}/verdict", headers=ADMIN,
                                         json={"verdict": "correct" if bad else "false_alarm"})
                assert answer.status_code == 200, answer.text

    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEYMOMENT_ENV": "test", "DATABASE_URL": database_url}
    env.pop("SCORING_MODEL_PATH", None)
    exported = tmp_path / "verdicts.jsonl"
    proc = subprocess.run([sys.executable, "-m", "keymoment", "scoring", "export-verdicts", "--out", str(exported),
                           "--industry", "hotel"], capture_output=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    rows = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    by_id = {r["feedback_id"]: r for r in rows}
    assert len(rows) == len(events) and no_text.data.id not in by_id  # current verdicts on feedback with text
    for event, bad in events:
        row = by_id[event.data.id]
        assert (row["text"], row["label"], row["source"], row["industry"]) == (
            event.data.text, "negative" if bad else "not_negative", "alerts-verdicts", "hotel")
    assert by_id[changed_mind]["verdict"] == "correct"  # the replaced verdict is not exported

    model = tmp_path / "tenant-model.json.gz"
    proc = subprocess.run([sys.executable, "-m", "keymoment", "scoring", "train", "--data", str(exported),
                           "--out", str(model), "--force"], capture_output=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode()
    assert "held-out rows" in proc.stderr.decode() and model.is_file()
    assert Scorer.load(model).score("前台等了一个小时没人理").p_negative is not None

    # train --from-database exports the same verdicts first (here none decided since 2999: too few to train)
    proc = subprocess.run([sys.executable, "-m", "keymoment", "scoring", "train", "--from-database", "--since",
                           "2999-01-01", "--out", str(tmp_path / "none.json.gz")],
                          capture_output=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 2 and "0 verdict(s) from the alerts database" in proc.stderr.decode()
    assert "too few" in proc.stderr.decode() and not (tmp_path / "none.json.gz").exists()
    # a database the alerts migrations never reached is named, not half-read
    proc = subprocess.run([sys.executable, "-m", "keymoment", "scoring", "export-verdicts", "--out",
                           str(tmp_path / "x.jsonl")], capture_output=True, cwd=ROOT,
                          env={**env, "DATABASE_SCHEMA": "not_alerts"}, timeout=120)
    assert proc.returncode == 2 and "keymoment migrate alerts" in proc.stderr.decode()
    assert not (tmp_path / "x.jsonl").exists()
