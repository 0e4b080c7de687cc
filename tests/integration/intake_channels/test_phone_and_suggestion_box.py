"""Phone notes and suggestion-box imports through intake and the real broker."""

import json

import pytest

from services.intake.app import create_app
from services.intake.cli import import_main
from tests.integration.intake_channels.support import dev_key, intake_settings, received
from tests.support.services import running, wait_until

pytestmark = pytest.mark.integration

CALL_NOTE = (
    "客户来电投诉：乘坐5月8日MU5137航班（上海虹桥—北京首都），航班延误四小时，期间无任何广播通知，"
    "到达后托运行李丢失，行李查询柜台无人值守；地勤人员态度恶劣，称“延误不归我们管”。"
    "客户表示若48小时内得不到答复将向民航局投诉，并要求赔偿改签费用及行李损失。已登记行李差错单 PEK-LL-20260508-117。"
)


async def test_chinese_call_centre_note_keeps_its_details(service_env, kafka_bootstrap):
    settings = intake_settings(service_env)
    async with running(create_app(settings)) as intake, intake.client(headers={"X-API-Key": dev_key(intake)}) as http:
        response = await http.post(
            "/v1/feedback",
            json={
                "channel": "phone",
                "text": CALL_NOTE,
                "customer": {"id": "FFP-88120931", "name": "刘女士", "phone": "+86 139 1234 5678"},
                "touchpoint": "baggage",
                "location": "PEK T2",
                "occurred_at": "2026-05-09T10:42:00+08:00",
                "phone": {"agent_id": "CC-SHA-207", "call_id": "CALL-20260509-004417", "duration_seconds": 754,
                          "direction": "inbound"},
                "attributes": {"flight": "MU5137", "queue": "complaints"},
            },
            headers={"Idempotency-Key": "CALL-20260509-004417"},
        )
        assert response.status_code == 202, response.text

        async def arrived() -> bool:
            return len(await received(kafka_bootstrap, settings)) >= 1

        await wait_until(arrived, timeout=20, what="the phone note on the broker")
        [event] = await received(kafka_bootstrap, settings)

    assert event.id == response.json()["id"]
    assert (event.channel, event.text, event.language) == ("phone", CALL_NOTE, "zh")
    assert (event.phone.agent_id, event.phone.call_id, event.phone.duration_seconds, event.phone.direction) == (
        "CC-SHA-207", "CALL-20260509-004417", 754, "inbound"
    )
    assert (event.customer.id, event.customer.name, event.customer.phone) == ("FFP-88120931", "刘女士", "+86 139 1234 5678")
    assert (event.location, event.touchpoint, event.occurred_at.isoformat()) == ("PEK T2", "baggage", "2026-05-09T10:42:00+08:00")
    assert event.attributes == {"flight": "MU5137", "queue": "complaints"}


CARDS = (
    "日期,地点,环节,内容,评分,联系人,电话\n"
    "2026年5月1日,朝阳门支行,柜台,排队太久了，只开了两个窗口,2,张女士,13800138000\n"
    '2026/5/2 14:30,朝阳门支行,大堂,"服务很好，\n谢谢小李",★★★★★,,\n'
    "2026-13-01,西单支行,,日期写错的卡片,3,,\n"
    "2026-05-03,西单支行,,ATM 吞卡，等了一个小时才有人来,1,,\n"
)


async def test_suggestion_box_import_and_reimport_create_no_duplicates(service_env, kafka_bootstrap, tmp_path, capsys):
    settings = intake_settings(service_env)
    gbk = CARDS.encode("gbk")
    async with running(create_app(settings)) as intake, intake.client(headers={"X-API-Key": dev_key(intake)}) as http:
        first = await http.post(
            "/v1/suggestion-box/import", params={"timezone": "Asia/Shanghai"}, files={"file": ("cards.csv", gbk, "text/csv")}
        )
        assert first.status_code == 200, first.text
        report = first.json()
        assert report["encoding"] == "gbk" and report["rows"] == 4
        assert [r["line"] for r in report["accepted"]] == [2, 3, 6]
        assert report["rejected"][0]["line"] == 5 and "2026-13-01" in report["rejected"][0]["errors"][0]

        # The same cards again, re-saved as UTF-8 with BOM and sent as a text/csv body: same ids.
        again = await http.post(
            "/v1/suggestion-box/import", params={"timezone": "Asia/Shanghai"},
            content=b"\xef\xbb\xbf" + CARDS.encode(), headers={"Content-Type": "text/csv"},
        )
        assert again.status_code == 200 and again.json()["accepted"] == report["accepted"]

        # And through the CLI, against the running intake.
        path = tmp_path / "cards.csv"
        path.write_bytes(gbk)
        code = await _run_cli(["suggestion-box", str(path), "--url", intake.url, "--api-key", dev_key(intake),
                               "--timezone", "Asia/Shanghai", "--json"])
        assert code == 1  # one row was rejected
        assert json.loads(capsys.readouterr().out)["accepted"] == report["accepted"]

        bad = await http.post("/v1/suggestion-box/import", content=b"foo,bar\n1,2\n", headers={"Content-Type": "text/csv"})
        assert bad.status_code == 422 and "no text or rating column" in bad.json()["detail"]

        async def all_sent() -> bool:
            return len(await received(kafka_bootstrap, settings)) >= 9

        await wait_until(all_sent, timeout=20, what="three imports on the broker")
        events = await received(kafka_bootstrap, settings)

    # At-least-once on the wire, one event per card in effect: every consumer dedupes by event id.
    assert len({e.id for e in events}) == 3
    by_line = {e.suggestion_box.line: e for e in events}
    assert by_line[2].text == "排队太久了，只开了两个窗口" and by_line[2].customer.phone == "13800138000"
    assert by_line[3].rating.value == 5 and by_line[3].occurred_at.isoformat() == "2026-05-02T14:30:00+08:00"
    assert by_line[6].location == "西单支行" and by_line[6].channel == "suggestion_box"


async def _run_cli(argv: list[str]) -> int:
    import asyncio

    return await asyncio.to_thread(import_main, argv)
