from fastapi import APIRouter, HTTPException, Request, status

from services.intake import service
from shared.contracts import FeedbackIn
from shared.events import FEEDBACK_RECEIVED
from shared.outbox import NotDurable

router = APIRouter()


@router.post("/v1/feedback", status_code=status.HTTP_202_ACCEPTED, tags=["feedback"])
async def submit_feedback(feedback: FeedbackIn, request: Request) -> dict[str, str]:
    runtime = request.app.state.runtime
    try:
        feedback_id = await service.accept(
            feedback,
            publisher=runtime.publisher,
            pool=runtime.pool,
            topic=runtime.settings.topic(FEEDBACK_RECEIVED.topic),
            source="anonymous",
        )
    except NotDurable as exc:
        raise HTTPException(503, "feedback store unavailable; retry later", headers={"Retry-After": "5"}) from exc
    return {"id": feedback_id}
