"""Suggestion-box CSV: encodings, Chinese headers, per-row rejections, stable card keys."""

import pytest

from services.intake.suggestion_box import CsvImportError, decode, parse_csv, parse_date, parse_rating
from shared.contracts import Channel, RatingScale

CARDS_ZH = (
    "日期,地点,环节,内容,评分,联系人,电话\n"
    "2026年5月1日,朝阳门支行,柜台,排队太久了，只开了两个窗口,2,张女士,13800138000\n"
    '2026/5/2 14:30,朝阳门支行,大堂,"服务很好，\n谢谢小李",★★★★★,,\n'
    "2026-13-01,西单支行,,日期写错的卡片,3,,\n"
    ",,,,,,\n"
    "2026-05-03,西单支行,,,9,,\n"
    "2026-05-01,朝阳门支行,柜台,排队太久了，只开了两个窗口,2,张女士,13800138000\n"
)


def test_gbk_file_with_chinese_headers():
    parsed = parse_csv(CARDS_ZH.encode("gbk"), source_key="k1", timezone="Asia/Shanghai")
    assert parsed.encoding == "gbk"
    assert [c.line for c in parsed.cards] == [2, 3, 8]
    first = parsed.cards[0].feedback
    assert first.channel is Channel.SUGGESTION_BOX
    assert (first.location, first.touchpoint, first.text) == ("朝阳门支行", "柜台", "排队太久了，只开了两个窗口")
    assert (first.rating.scale, first.rating.value) == (RatingScale.STARS, 2)
    assert (first.customer.name, first.customer.phone) == ("张女士", "13800138000")
    assert first.occurred_at.isoformat() == "2026-05-01T00:00:00+08:00"
    assert first.suggestion_box.line == 2 and first.suggestion_box.import_id == parsed.import_id
    second = parsed.cards[1].feedback
    assert second.text == "服务很好，\n谢谢小李" and second.rating.value == 5
    assert second.occurred_at.isoformat() == "2026-05-02T14:30:00+08:00"
    assert [(r.line, r.errors[0][:11]) for r in parsed.rejected] == [(5, "date: canno"), (7, "rating: sta")]


@pytest.mark.parametrize("encode", [lambda s: s.encode("utf-8"), lambda s: b"\xef\xbb\xbf" + s.encode("utf-8"), lambda s: s.encode("gbk")])
def test_same_cards_same_keys_in_every_encoding(encode):
    reference = [c.idempotency_key for c in parse_csv(CARDS_ZH.encode(), source_key="k1").cards]
    assert [c.idempotency_key for c in parse_csv(encode(CARDS_ZH), source_key="k1").cards] == reference


def test_identical_cards_count_separately_but_reimport_and_reordering_keep_keys():
    parsed = parse_csv(CARDS_ZH.encode(), source_key="k1")
    keys = [c.idempotency_key for c in parsed.cards]
    assert len(set(keys)) == 3  # the two identical cards are two cards
    lines = CARDS_ZH.splitlines(keepends=True)
    shuffled = lines[0] + "2026-05-09,新街口,,新加的一张卡片,4,,\n" + "".join(lines[1:])
    again = parse_csv(shuffled.encode(), source_key="k1")
    assert set(keys) < {c.idempotency_key for c in again.cards}  # one new card, old ones unchanged
    assert parse_csv(CARDS_ZH.encode(), source_key="other-key").cards[0].idempotency_key != keys[0]


def test_card_id_column_is_the_identity():
    a = parse_csv(b"card_id,text\nC-1,Great staff\n", source_key="k").cards[0]
    b = parse_csv(b"card_id,text\nC-1,Great staff!\n", source_key="k").cards[0]
    assert a.idempotency_key == b.idempotency_key and a.feedback.suggestion_box.card_id == "C-1"


def test_english_headers_scale_column_semicolons_and_ignored_columns():
    data = b"Date;Location;Comment;Rating;Scale;Contact Email;Colour\n2026-05-04T10:00:00+01:00;Heathrow T5;Lovely;9;nps;a@example.com;blue\n"
    parsed = parse_csv(data, source_key="k")
    [card] = parsed.cards
    assert (card.feedback.rating.scale, card.feedback.rating.value) == (RatingScale.NPS, 9)
    assert card.feedback.customer.email == "a@example.com"
    assert card.feedback.occurred_at.isoformat() == "2026-05-04T10:00:00+01:00"
    assert parsed.ignored_columns == ["Colour"]


def test_invalid_contact_and_empty_card_are_rejected_with_reasons():
    parsed = parse_csv(b"text,rating,email\nok,3,not-an-email\n,,\n,,x@example.com\n", source_key="k")
    assert parsed.cards == []
    assert parsed.rejected[0].line == 2 and "email" in parsed.rejected[0].errors[0]
    assert parsed.rejected[1].line == 4 and "feedback needs a text, a rating, or both" in parsed.rejected[1].errors[0]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"foo,bar\n1,2\n", "no text or rating column"),
        (b"\xff\xfe\x00t\x00e", "neither UTF-8 nor GBK"),
    ],
)
def test_whole_file_errors(data, message):
    with pytest.raises(CsvImportError, match=message):
        parse_csv(data, source_key="k")


def test_unknown_timezone():
    with pytest.raises(CsvImportError, match="unknown timezone"):
        parse_csv(b"text\nhi\n", source_key="k", timezone="Mars/Olympus")


@pytest.mark.parametrize(
    ("value", "scale", "expected"),
    [("4", None, ("stars", 4)), ("4/5", None, ("stars", 4)), ("8/10", None, ("nps", 8)), ("-2", "mot", ("mot", -2)),
     ("★★☆", None, ("stars", 2)), ("3分", None, ("stars", 3)), ("5", "csat", ("csat", 5))],
)
def test_parse_rating(value, scale, expected):
    rating = parse_rating(value, scale, RatingScale.STARS)
    assert (rating.scale.value, rating.value) == expected


def test_parse_date_forms():
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Asia/Shanghai")
    assert parse_date("2026年5月1日 9:05", tz).isoformat() == "2026-05-01T09:05:00+08:00"
    assert parse_date("2026.05.01", tz).isoformat() == "2026-05-01T00:00:00+08:00"
    with pytest.raises(ValueError):
        parse_date("yesterday", tz)


def test_decode_prefers_utf8():
    assert decode("内容".encode()) == ("内容", "utf-8")


def test_separator_is_judged_on_the_header_not_the_card_texts():
    data = "date\tlocation\ttext\n2026-05-01\tT2\tSlow; rude, and the queue; was long; very\n".encode()
    [card] = parse_csv(data, source_key="k").cards
    assert card.feedback.text == "Slow; rude, and the queue; was long; very"
