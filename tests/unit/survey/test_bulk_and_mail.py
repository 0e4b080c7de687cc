"""Bulk uploads read as people write them, and the invitation mail's unsubscribe headers."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from services.survey import bulk, invitations, tokens
from services.survey.schemas import SurveyDefinition
from services.survey.settings import SurveySettings
from shared.contracts import Customer
from shared.signing import Signer

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def test_csv_in_gbk_with_chinese_headers_context_columns_and_bad_rows():
    text = ("客户编号;邮箱;姓名;门店;ctx.order_id;Context.Agent;备注\n"
            "C-1;li.wei@example.cn;李伟;北京国贸店;A-1;王五;忽略\n"
            ";;;;;;\n"
            "C-2;wang@example.cn;王芳;;;;;extra\n")
    rows = bulk.parse(text.encode("gb18030"), "text/csv", "post-visit")
    assert [r.number for r in rows] == [1, 3]
    assert rows[0].data == {"survey_id": "post-visit", "customer": {"id": "C-1", "email": "li.wei@example.cn",
                                                                     "name": "李伟"},
                            "location": "北京国贸店", "context": {"order_id": "A-1", "Agent": "王五"}}
    assert rows[1].data is None and "8 cells" in rows[1].error
    utf8_bom = "\ufeffemail,key\nx@example.cn,k1\n".encode()
    assert bulk.parse(utf8_bom, "text/csv", "s")[0].data == {"survey_id": "s", "customer": {"email": "x@example.cn"},
                                                            "key": "k1", "context": {}}
    with pytest.raises(bulk.BulkError, match="email"):
        bulk.parse(b"name\nx\n", "text/csv", "s")
    with pytest.raises(bulk.BulkError, match="neither UTF-8 nor GBK"):
        bulk.parse(b"email\n\xff\xfe\xfd\n", "text/csv", "s")


def test_ndjson_rows_and_the_limits():
    rows = bulk.parse(b'{"customer": {"email": "a@b.cn"}}\n\n[1]\n{"survey_id": "x"}\nnope\n',
                      "application/x-ndjson", "s")
    assert [(r.number, r.data is not None) for r in rows] == [(1, True), (3, False), (4, False), (5, False)]
    assert rows[0].data["survey_id"] == "s" and "this upload is for survey 's'" in rows[2].error
    with pytest.raises(bulk.BulkError, match="10000"):
        bulk.parse(b'{"customer": {}}\n' * (bulk.MAX_ROWS + 1), "application/x-ndjson", "s")
    with pytest.raises(bulk.BulkError, match="text/csv"):
        bulk.parse(b"", "application/xml", "s")


def test_the_invitation_carries_one_click_unsubscribe_and_its_link_verifies():
    settings = SurveySettings(keymoment_env="test", survey_public_base_url="https://s.example.cn/")
    signer = Signer("k" * 32)
    survey = SurveyDefinition.model_validate({
        "id": "post-visit", "title": {"zh": "到店体验", "en": "Your visit"},
        "questions": [{"id": "q", "type": "mot", "label": {"zh": "感受", "en": "Feeling"}}]})
    mail = invitations.invitation(settings, signer, request_id="r-1", customer=Customer(name="李伟"),
                                  address="li.wei@example.cn", language="en", survey=survey, now=NOW,
                                  send_at=NOW.replace(hour=3))
    message = email.message_from_bytes(mail.message, policy=email.policy.default)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(message["List-Unsubscribe"]).strip("<>")
    assert url.startswith("https://s.example.cn/u/")
    assert tokens.verify_unsubscribe(signer, url.rsplit("/", 1)[1], now=NOW) == "r-1"
    with pytest.raises(tokens.TokenError):  # a survey link is no unsubscribe link
        tokens.verify_unsubscribe(signer, tokens.sign(signer, survey_id="post-visit", request_id="r-1",
                                                      ttl=NOW - NOW.replace(hour=1), now=NOW), now=NOW)
    assert mail.not_before == NOW.replace(hour=3) and message["Date"].datetime == NOW.replace(hour=3)
    plain = message.get_body(("plain",)).get_content()
    assert plain.startswith("Dear 李伟,") and url in plain
