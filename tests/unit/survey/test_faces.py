"""Survey's faces are the kiosk's: the kiosk's own faceSvg (kiosk.js) is run with Node.js and
must draw exactly what services.survey.faces draws, for every MOT value."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from services.survey.faces import COLOURS, face_svg
from services.survey.pages import render_form
from services.survey.schemas import SurveyDefinition

KIOSK_JS = Path(__file__).resolve().parents[3] / "services" / "intake" / "kiosk" / "static" / "kiosk.js"
NODE = shutil.which("node")


def _kiosk_faces() -> dict[int, str]:
    source = KIOSK_JS.read_text(encoding="utf-8")
    colours = re.search(r"const COLOURS = \{.*?\};", source, re.S).group(0)
    function = re.search(r"function faceSvg\(value\) \{.*?\n  \}", source, re.S).group(0)
    script = (f"{colours}\n{function}\nconst out = {{}};\n"
              "for (let v = -3; v <= 3; v++) out[v] = faceSvg(String(v));\nconsole.log(JSON.stringify(out));")
    done = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=30, check=True)
    return {int(k): v for k, v in json.loads(done.stdout).items()}


def _shape(svg: str) -> str:
    """The drawing without the template literal's line breaks and indentation."""
    return re.sub(r">\s+<", "><", " ".join(svg.split()))


@pytest.mark.skipif(NODE is None, reason="Node.js not installed (make system-deps installs it)")
def test_the_survey_draws_the_kiosks_faces():
    kiosk = _kiosk_faces()
    assert sorted(kiosk) == list(range(-3, 4))
    for value in range(-3, 4):
        assert _shape(face_svg(value)) == _shape(kiosk[value]), value


def test_the_form_shows_drawn_faces_not_emoji():
    survey = SurveyDefinition.model_validate({
        "id": "s", "title": {"zh": "体验", "en": "Visit"},
        "questions": [{"id": "q", "type": "mot", "label": {"zh": "感受", "en": "Feeling"}}]})
    page = render_form(survey, lang="zh-CN", action="/s/s/responses", switch_url="/s/s?lang=en", token=None,
                       submission_id="x" * 12)
    assert page.count("<svg") == 7 and all(colour in page for colour in COLOURS.values())
    assert not re.search("[\U0001F300-\U0001FAFF]", page), "no emoji"
    with pytest.raises(ValueError):
        face_svg(4)
