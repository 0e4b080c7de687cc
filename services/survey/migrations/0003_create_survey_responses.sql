-- One row per submitted response. A personal link (request_id) is answered
-- once; an anonymous submission is deduplicated by its form's submission_id.
CREATE TABLE survey_responses (
    response_id text PRIMARY KEY,
    survey_id text NOT NULL REFERENCES surveys (survey_id),
    request_id text UNIQUE REFERENCES survey_requests (request_id),
    submission_id text,
    answers jsonb NOT NULL,
    language text,
    feedback_ids text[] NOT NULL,
    submitted_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (survey_id, submission_id)
);
CREATE INDEX survey_responses_survey_submitted ON survey_responses (survey_id, submitted_at);
