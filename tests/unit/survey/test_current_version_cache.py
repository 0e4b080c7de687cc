"""The public pages' current-version cache: read at most every ``fresh_for`` seconds, and at
once again after an edit through this process."""

from __future__ import annotations

import json

from services.survey.repository import Definitions


class _Surveys:
    """Answers ``SELECT definition, version FROM surveys`` like the table, counting reads."""

    def __init__(self, definition: dict) -> None:
        self.rows = {definition["id"]: (json.dumps(definition, ensure_ascii=False), 1)}
        self.reads = 0

    async def fetchrow(self, query: str, survey_id: str):
        self.reads += 1
        found = self.rows.get(survey_id)
        return None if found is None else {"definition": found[0], "version": found[1]}


SURVEY = {"id": "s1", "title": {"zh": "回访", "en": "Follow-up"}, "access": "public",
          "questions": [{"id": "q", "type": "mot", "label": {"zh": "感受", "en": "Feeling"}}]}


async def test_the_current_version_is_read_once_per_fresh_for_and_again_after_forget() -> None:
    now = [100.0]
    table = _Surveys(SURVEY)
    cache = Definitions(fresh_for=1.0, clock=lambda: now[0])
    first = await cache.current(table, "s1")
    assert first is not None and first[1] == 1 and first[0].id == "s1"
    assert await cache.current(table, "s1") == first and table.reads == 1
    assert await cache.current(table, "nope") is None and await cache.current(table, "nope") is None
    assert table.reads == 2  # an unknown id is remembered too (a flood of them costs one read a second)

    table.rows["s1"] = (json.dumps(SURVEY | {"title": {"zh": "新", "en": "New"}}, ensure_ascii=False), 2)
    now[0] += 0.5
    assert (await cache.current(table, "s1"))[1] == 1  # another replica's edit: seen within fresh_for
    now[0] += 0.6
    assert (await cache.current(table, "s1"))[1] == 2 and table.reads == 3

    table.rows["s1"] = (table.rows["s1"][0], 3)
    cache.forget("s1")  # an edit through this process
    assert (await cache.current(table, "s1"))[1] == 3 and table.reads == 4
