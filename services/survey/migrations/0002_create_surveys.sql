-- Survey definitions (immutable once created; a changed survey is a new id).
-- `definition` is services.survey.schemas.SurveyDefinition as JSON.
CREATE TABLE surveys (
    survey_id text PRIMARY KEY,
    definition jsonb NOT NULL,
    builtin boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (definition ->> 'id' = survey_id)
);

-- The recovery survey alerts asks for after resolving an alert (survey.requested.v1, kind recovery).
INSERT INTO surveys (survey_id, builtin, definition) VALUES ('recovery', true, $json$
{
  "id": "recovery",
  "access": "link",
  "title": {"zh": "我们解决了您的问题吗？", "en": "Did we put it right?"},
  "intro": {
    "zh": "您之前向我们反映了问题，我们已经处理。请告诉我们您现在的感受。",
    "en": "You told us about a problem and we have acted on it. Please tell us how you feel now."
  },
  "thanks": {
    "zh": "感谢您的回复！如果仍不满意，我们的负责人会再次与您联系。",
    "en": "Thank you! If you are still not satisfied, our manager will contact you again."
  },
  "questions": [
    {
      "id": "satisfaction",
      "type": "mot",
      "required": true,
      "label": {"zh": "您对我们的处理结果满意吗？", "en": "How satisfied are you with how we handled it?"}
    },
    {
      "id": "comment",
      "type": "text",
      "required": false,
      "max_length": 2000,
      "label": {"zh": "还有什么想告诉我们的吗？（选填）", "en": "Anything else you would like to tell us? (optional)"}
    }
  ]
}
$json$::jsonb);
