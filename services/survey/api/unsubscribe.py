"""Unsubscribing from invitation mail: the ``List-Unsubscribe`` link of every invitation.

``GET /u/{token}`` shows a confirm page (mail scanners and link previews follow links:
a GET never unsubscribes). ``POST /u/{token}`` unsubscribes: what a mail client's
one-click button sends (RFC 8058, body ``List-Unsubscribe=One-Click``, no cookies, no
login) and what the confirm page's button sends. The address is suppressed (reason
``unsubscribed``) for every survey, and the customer's invitations not sent yet are
withdrawn. The pages show the address masked (``l***@example.cn``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.survey import invitations, inviting, repository, suppressions, tokens
from services.survey.api.deps import Ctx, Pool
from services.survey.api.limits import too_many
from services.survey.api.public import PAGE_HEADERS
from services.survey.pages import pick_language, render_message

_HTML = {"text/html": {}}
router = APIRouter(tags=["unsubscribe"], responses={
    404: {"content": _HTML, "description": "The link is not valid, or names no address."},
    429: {"content": _HTML, "description": "Too many requests for this link (`Retry-After`)."},
})

MAX_BODY_BYTES = 4096
"""Largest body of an unsubscribe POST (a mail client sends ``List-Unsubscribe=One-Click``)."""


def _page(content: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status_code, headers=PAGE_HEADERS)


async def _invitation(token: str, request: Request, ctx: Ctx) -> str | Response:
    """The invitation (request id) of an unsubscribe link, or the answer to give instead (an invalid
    link, a link over its rate)."""
    try:
        request_id = tokens.verify_unsubscribe(ctx.links, token, now=ctx.clock.now())
    except tokens.TokenError:
        return _page(render_message("invalid_link", pick_language(None, None, request.headers.get(
            "accept-language"))), 404)
    if wait := ctx.limits.links.take(request_id):
        return too_many(ctx.metrics, request, "link", wait)
    return request_id


@router.get("/u/{token}", response_class=HTMLResponse, summary="The unsubscribe page of an invitation (confirm)")
async def unsubscribe_page(token: str, request: Request, pool: Pool, ctx: Ctx) -> Response:
    accept = request.headers.get("accept-language")
    found = await _invitation(token, request, ctx)
    if isinstance(found, Response):
        return found
    invitation = await repository.get_request(pool, found)
    address = invitations.usable_address(invitation.customer) if invitation else None
    if address is None:
        return _page(render_message("invalid_link", pick_language(None, None, accept)), 404)
    lang = pick_language(request.query_params.get("lang"), invitation.language, accept)
    shown = {"address": inviting.masked(address)}
    async with pool.acquire() as conn:
        listed = await suppressions.is_suppressed(conn, ctx.settings.privacy_key(), address)
    if listed == "unsubscribed":
        return _page(render_message("unsubscribed", lang, fmt=shown))
    return _page(render_message("unsubscribe", lang, fmt=shown, form_action=f"/u/{token}"))


@router.post("/u/{token}", response_class=HTMLResponse,
             summary="Unsubscribe (RFC 8058 one-click: List-Unsubscribe=One-Click, or the confirm page's button)")
async def unsubscribe(token: str, request: Request, pool: Pool, ctx: Ctx) -> Response:
    accept = request.headers.get("accept-language")
    found = await _invitation(token, request, ctx)
    if isinstance(found, Response):
        return found
    # What it says does not matter (the link is the secret); the request limits keep it within
    # MAX_BODY_BYTES (413 above).
    async with pool.acquire() as conn, conn.transaction():
        address = await inviting.unsubscribe(ctx, conn, found)
        invitation = await repository.get_request(conn, found)
    if address is None:
        return _page(render_message("invalid_link", pick_language(None, None, accept)), 404)
    lang = pick_language(request.query_params.get("lang"), invitation.language if invitation else None, accept)
    return _page(render_message("unsubscribed", lang, fmt={"address": inviting.masked(address)}))
