"""MOT scorer behaviour pinned with concrete Chinese and English examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.alerts.scoring import RATING_TABLES, Scorer, ScoreResult, rating_to_mot
from services.alerts.scoring.features import detect_lang

CASES = Path(__file__).parent / "data" / "escalation_cases.jsonl"


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.load()


# ---------------------------------------------------------------- ratings
@pytest.mark.parametrize(("scale", "value", "mot"), [
    ("mot", -3, -3), ("mot", 0, 0), ("mot", 3, 3),
    ("nps", 0, -3), ("nps", 2, -3), ("nps", 4, -2), ("nps", 6, -1), ("nps", 7, 0), ("nps", 8, 1),
    ("nps", 9, 2), ("nps", 10, 3),
    ("csat", 1, -2), ("csat", 2, -1), ("csat", 3, 0), ("csat", 4, 1), ("csat", 5, 2),
    ("stars", 1, -2), ("stars", 3, 0), ("stars", 3.5, 0), ("stars", 4.5, 1), ("stars", 5, 2),
    ("CSAT", 5, 2),
])
def test_rating_tables(scale: str, value: float, mot: int) -> None:
    assert rating_to_mot(scale, value) == mot


@pytest.mark.parametrize(("scale", "value"), [
    ("nps", 11), ("nps", -1), ("csat", 0), ("csat", 6), ("stars", 0.5), ("mot", 4), ("likert", 3),
    ("csat", "5"), ("csat", True), ("csat", float("nan")),
])
def test_rating_errors(scale: str, value: object) -> None:
    with pytest.raises(ValueError):
        rating_to_mot(scale, value)  # type: ignore[arg-type]


def test_rating_tables_cover_every_value() -> None:
    for table in RATING_TABLES.values():
        assert all(-3 <= m <= 3 for m in table.values())


def test_rating_only(scorer: Scorer) -> None:
    r = scorer.score("", rating={"scale": "csat", "value": 5})
    assert (r.mot, r.negative, r.text_mot, r.rating_mot) == (2, False, None, 2)
    assert "csat=5 maps to +2" in r.reasons[0]
    r = scorer.score(None, rating={"scale": "nps", "value": 3})
    assert r.mot == -2 and r.negative


def test_nothing_to_score(scorer: Scorer) -> None:
    with pytest.raises(ValueError):
        scorer.score("   ")
    with pytest.raises(ValueError):
        scorer.score("ok", rating={"scale": "csat"})


# ---------------------------------------------------------------- result shape
def test_result_shape(scorer: Scorer) -> None:
    r = scorer.score("The agent was rude and unhelpful")
    assert isinstance(r, ScoreResult)
    assert r.negative is (r.mot <= -1)
    assert 0.0 <= r.confidence <= 1.0
    assert r.lang == "en" and r.cues and r.reasons
    assert set(r.to_dict()) == {"negative", "mot", "confidence", "cues", "lang", "escalation", "reasons",
                                "text_mot", "rating_mot", "forced_by", "p_negative"}
    with pytest.raises(AttributeError):
        r.mot = 3  # type: ignore[misc]


# ---------------------------------------------------------------- polarity, negation
@pytest.mark.parametrize("text", [
    "不好", "一点也不好", "不是很好", "服务态度很差", "等了一个多小时才送到，饭都凉了", "质量太差，不推荐购买",
    "not good at all", "The agent was rude and unhelpful", "I've been on hold for 45 minutes. Unacceptable.",
    "The app keeps crashing whenever I try to transfer money", "银行卡莫名其妙被冻结，网点也解决不了",
    "话费莫名其妙多扣了二十块", "Thanks for nothing",
])
def test_negative(scorer: Scorer, text: str) -> None:
    r = scorer.score(text)
    assert r.negative and r.mot <= -1, (text, r)


@pytest.mark.parametrize("text", [
    "不错", "很不错", "服务态度很好，下次还来", "酒店房间干净，前台服务热情", "开户流程很顺利，工作人员讲解很详细",
    "Great crew, smooth flight, thank you!", "The hotel room was clean and the staff were friendly.",
    "Quick and easy account opening, the advisor explained everything",
])
def test_positive(scorer: Scorer, text: str) -> None:
    r = scorer.score(text)
    assert not r.negative and r.mot >= 1, (text, r)


def test_negation_is_visible_in_cues(scorer: Scorer) -> None:
    assert any("一点也不好" in c and "negated" in c for c in scorer.score("一点也不好").cues)
    assert any("not good" in c and "negated" in c for c in scorer.score("not good at all").cues)
    # 不错 is a fixed positive expression, not 不 + 错
    assert any(c.startswith("'不错' +") for c in scorer.score("不错").cues)
    # "not bad" is a positive lexicon cue (the model may still hedge it)
    assert any(c.startswith("'not bad' +") for c in scorer.score("not bad").cues)


def test_intensifier_and_downtoner(scorer: Scorer) -> None:
    def lex(text: str) -> float:
        an = scorer.score_text(text).analysis
        return an.pos - an.neg
    assert lex("非常慢") < lex("慢") < lex("有点慢") < 0
    assert lex("extremely slow") < lex("slow") < lex("slightly slow") < 0
    assert lex("very helpful") > lex("helpful") > 0
    assert lex("好难吃") < lex("难吃")  # 好 as intensifier, not "good"


def test_contrast(scorer: Scorer) -> None:
    for text in ("the food was fine but the waiter was rude", "虽然味道不错，但是送餐太慢了",
                 "虽然价格便宜，但是质量太差了", "这个app的UI设计很nice，但是customer service太差了"):
        r = scorer.score(text)
        assert r.negative, (text, r)
        assert any(c.startswith("contrast:") for c in r.cues)
    r = scorer.score("有点贵，但是味道真的很棒，服务也热情")
    assert not r.negative


def test_no_opinion_is_zero(scorer: Scorer) -> None:
    r = scorer.score("Order 12345 arrived on Monday.")
    assert r.mot == 0 and not r.negative


# ---------------------------------------------------------------- language
@pytest.mark.parametrize(("text", "lang"), [
    ("服务很好", "zh"), ("great service", "en"), ("我买的iPhone很好用", "zh"),
    ("这个app的UI设计很nice，但是customer service太差了", "mixed"), ("12345 !!!", "unknown"),
])
def test_detect_lang(text: str, lang: str) -> None:
    assert detect_lang(text.lower()) == lang


def test_lang_override(scorer: Scorer) -> None:
    assert scorer.score("服务很好", lang="zh-CN").lang == "zh"
    with pytest.raises(ValueError):
        scorer.score("服务很好", lang="klingon")


# ---------------------------------------------------------------- long texts
EMAIL_EN = """Dear team,

I have been a customer of your bank for 12 years and have always been happy with the branch staff.
Last month, however, my card was blocked without notice while I was abroad. I called the hotline
four times; each time I was on hold for over 40 minutes and nobody could tell me why.

I finally had to borrow money from a friend. This is unacceptable and I expect an explanation and a
refund of the fees.

Regards,
John"""

EMAIL_ZH = """尊敬的客服：

我是贵公司的老用户，办理宽带已经五年了。上个月开始网络经常断线，晚上几乎无法使用。我先后报修三次，
每次都说会派人上门，结果都没有人来。

打客服电话也总是转来转去，没人能解决问题。希望你们尽快处理。"""


def test_long_emails(scorer: Scorer) -> None:
    for text in (EMAIL_EN, EMAIL_ZH, EMAIL_EN * 20):
        r = scorer.score(text)
        assert r.negative and r.mot <= -1 and not r.escalation
    r = scorer.score(EMAIL_ZH + "否则我只能考虑换一家运营商。")
    assert r.mot == -3 and r.escalation == ["churn"]


# ---------------------------------------------------------------- escalation
@pytest.mark.parametrize(("text", "category"), [
    ("我要打12315投诉你们", "regulator"), ("再不退款就去消协", "regulator"), ("我会找媒体曝光", "media"),
    ("已经请了律师，准备起诉", "legal"), ("孩子被烫伤了", "safety"), ("吃完全家拉肚子", "food_safety"),
    ("太失望了，再也不来了", "churn"), ("明天去销户", "churn"),
    ("I will sue you", "legal"), ("Filing a complaint with the BBB", "regulator"),
    ("Reporting you to the FAA", "regulator"), ("I'm going to the press", "media"),
    ("My son was injured by the escalator", "safety"), ("Got food poisoning from your burger", "food_safety"),
    ("Never flying you again", "churn"), ("Please cancel my account", "churn"), ("I'm switching to Verizon", "churn"),
])
def test_escalation_forces_minus_three(scorer: Scorer, text: str, category: str) -> None:
    r = scorer.score(text, rating={"scale": "csat", "value": 5})
    assert r.mot == -3 and r.negative, r
    assert category in r.escalation
    assert r.rating_mot == 2 and r.text_mot == -3
    assert any("worse wins" in x for x in r.reasons)
    assert any(c.startswith(f"escalation:{category}:") for c in r.cues)


@pytest.mark.parametrize("text", [
    "the lawyer at your branch was very helpful", "I won't sue, I just want my money back",
    "No one was injured, thankfully", "不会再投诉了，问题解决了", "我不会投诉到消协的", "没有受伤，就是吓了一跳",
    "手机拍照曝光很准", "这款多媒体播放器很好用", "Flight was cancelled and I missed my connection",
    "We switched to the later flight, no problem", "Great service, I will never switch to another bank",
])
def test_escalation_tricky_negatives(scorer: Scorer, text: str) -> None:
    assert scorer.score(text).escalation == []


def test_escalation_case_file() -> None:
    """The shipped hand-made set: >= 50 cases per language, detector stays accurate."""
    scorer = Scorer.load()
    rows = [json.loads(x) for x in CASES.read_text(encoding="utf-8").splitlines() if x.strip()]
    for lang in ("zh", "en"):
        mine = [r for r in rows if r["lang"] == lang]
        assert len(mine) >= 50
        assert sum(r["escalation"] for r in mine) >= 25
        wrong = [r["text"] for r in mine if bool(scorer.score(r["text"]).escalation) != r["escalation"]]
        assert len(wrong) <= 2, wrong


# ---------------------------------------------------------------- rating vs text
def test_worse_wins(scorer: Scorer) -> None:
    r = scorer.score("服务很差，等了一个小时", rating={"scale": "csat", "value": 5})
    assert r.rating_mot == 2 and r.text_mot <= -1 and r.mot == r.text_mot and r.negative
    assert any("worse wins: text" in x for x in r.reasons)
    r = scorer.score("Lovely staff, great room", rating={"scale": "stars", "value": 1})
    assert r.mot == -2 and r.negative
    assert any("worse wins: rating" in x for x in r.reasons)


def test_neutral_text_keeps_rating(scorer: Scorer) -> None:
    r = scorer.score("Order 12345 arrived on Monday.", rating={"scale": "nps", "value": 10})
    assert r.mot == 3 and r.text_mot == 0


def test_to_dict_is_every_field(scorer: Scorer) -> None:
    from dataclasses import asdict
    for r in (scorer.score("服务很差", rating={"scale": "csat", "value": 2}), scorer.score("I will sue you")):
        assert r.to_dict() == asdict(r)


# ---------------------------------------------------------------- what the verdict rests on
def test_forced_by_and_alerts_at(scorer: Scorer) -> None:
    esc = scorer.score("Great stay, but I will sue you over the deposit", rating={"scale": "csat", "value": 5})
    assert esc.forced_by == "escalation" and esc.alerts_at(0.99)
    rated = scorer.score("Lovely staff, great room", rating={"scale": "stars", "value": 1})
    assert rated.forced_by == "rating" and rated.negative and rated.alerts_at(0.99)
    assert rated.p_negative is not None and rated.p_negative < 0.5  # the text itself is positive
    text = scorer.score("前台等了四十分钟没人理，服务太差")
    assert text.forced_by is None and text.negative and text.p_negative is not None
    assert text.alerts_at(scorer.alert_threshold) is text.negative
    assert not text.alerts_at(min(1.0, text.p_negative + 0.01))
    assert text.confidence == pytest.approx(text.p_negative, abs=1e-3)
    calm = scorer.score("Order 12345 arrived on Monday.")
    assert calm.forced_by is None and not calm.alerts_at(scorer.alert_threshold)
    rating_only = scorer.score(None, rating={"scale": "nps", "value": 2})
    assert rating_only.forced_by == "rating" and rating_only.p_negative is None and rating_only.alerts_at(0.9)
    assert scorer.score(None, rating={"scale": "nps", "value": 9}).alerts_at(0.0) is False
