"""The demo survey ``keymoment dev`` seeds, so a developer has a working link at once."""

from __future__ import annotations

import httpx

DEMO_SURVEY_ID = "demo"

DEMO_SURVEY = {
    "id": DEMO_SURVEY_ID,
    "title": {"zh": "本次到店体验如何？", "en": "How was your visit today?"},
    "intro": {"zh": "只需一分钟，帮助我们做得更好。", "en": "One minute of your time helps us do better."},
    "thanks": {"zh": "感谢您的反馈！我们会认真阅读每一条意见。", "en": "Thank you! We read every comment."},
    "access": "public",
    "location": "demo-store",
    "touchpoint": "checkout",
    "questions": [
        {"id": "feeling", "type": "mot", "required": True,
         "label": {"zh": "您对本次服务满意吗？", "en": "How did the visit feel?"}},
        {"id": "effort", "type": "ces",
         "label": {"zh": "办理您的事情有多容易？", "en": "How easy was it to get what you came for?"}},
        {"id": "reason", "type": "choice", "label": {"zh": "最影响您感受的是", "en": "What mattered most"},
         "options": [
             {"id": "staff", "label": {"zh": "店员服务", "en": "The staff"}},
             {"id": "queue", "label": {"zh": "排队等候", "en": "Waiting in line"}},
             {"id": "products", "label": {"zh": "商品", "en": "The products"}},
             {"id": "price", "label": {"zh": "价格", "en": "The price"}},
         ]},
        {"id": "comment", "type": "text", "max_length": 2000,
         "label": {"zh": "还有什么想告诉我们的吗？（选填）", "en": "Anything else you would like to tell us? (optional)"}},
    ],
    "triggers": [{"on": "visit", "locations": ["demo-store"]}],
}


def seed(url: str, admin_token: str) -> str:
    """Create the demo survey in the survey service at ``url`` unless it exists; its public link."""
    with httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {admin_token}"}) as http:
        response = http.post("/v1/surveys", json=DEMO_SURVEY)
        if response.status_code not in (201, 409):
            raise RuntimeError(f"the demo survey was refused: HTTP {response.status_code} {response.text[:300]}")
    return f"{url}/s/{DEMO_SURVEY_ID}"
