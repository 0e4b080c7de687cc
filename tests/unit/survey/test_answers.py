"""Survey definitions and answer validation, including input typed with Chinese IMEs."""

import pytest
from pydantic import ValidationError

from services.survey.schemas import SurveyDefinition, validate_answers

SURVEY = SurveyDefinition.model_validate(
    {
        "id": "branch-visit",
        "title": {"zh": "网点体验", "en": "Branch visit"},
        "questions": [
            {"id": "mot", "type": "mot", "label": {"zh": "这次办理感受如何？", "en": "How was it?"}, "required": True},
            {"id": "nps", "type": "nps", "label": {"zh": "您会推荐我们吗？", "en": "Would you recommend us?"}},
            {"id": "comment", "type": "text", "label": {"zh": "意见", "en": "Comments"}, "max_length": 10},
        ],
    }
)


def codes(issues):
    return {(i.question_id, i.code) for i in issues}


def test_valid_answers_are_cleaned_to_numbers():
    answers, issues = validate_answers(SURVEY, {"mot": "-2", "nps": 9, "comment": "  排队太久 "})
    assert issues == []
    assert answers == {"mot": -2, "nps": 9, "comment": "排队太久"}


def test_full_width_digits_and_signs_from_chinese_input_methods():
    answers, issues = validate_answers(SURVEY, {"mot": "－３", "nps": "１０"})
    assert issues == [] and answers == {"mot": -3, "nps": 10}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"nps": 5}, {("mot", "required")}),
        ({"mot": 4}, {("mot", "out_of_range")}),
        ({"mot": True}, {("mot", "out_of_range")}),
        ({"mot": "1.5"}, {("mot", "out_of_range")}),
        ({"mot": 1, "comment": "x" * 11}, {("comment", "too_long")}),
        ({"mot": 1, "commnet": "typo"}, {(None, "unknown_question")}),
    ],
)
def test_bad_answers_name_the_question(raw, expected):
    _, issues = validate_answers(SURVEY, raw)
    assert codes(issues) == expected
    assert all(i.zh and i.en for i in issues)  # every message is bilingual


def test_an_empty_form_is_refused():
    optional = SURVEY.model_copy(update={"questions": SURVEY.questions[1:]})
    _, issues = validate_answers(optional, {})
    assert codes(issues) == {(None, "empty")}


def test_definition_rejects_duplicate_ids_missing_text_and_typos():
    base = SURVEY.model_dump(mode="json")
    with pytest.raises(ValidationError, match="used twice"):
        SurveyDefinition.model_validate(base | {"questions": base["questions"] + base["questions"][:1]})
    with pytest.raises(ValidationError, match="give the text in zh and en"):
        SurveyDefinition.model_validate(base | {"title": {}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        SurveyDefinition.model_validate(base | {"titel": {"en": "x"}})
