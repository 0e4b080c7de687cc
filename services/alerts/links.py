"""What alerts signs (purposes of :mod:`shared.signing`, one key each: see the settings)
and what its action links carry.

- :data:`ALERT_LINK` (``l1.<payload>.<kid><mac>``): the action links of an alert mail. A
  link names the notification (``n``), the alert (``a``), the one recipient the mail went
  to (``r``: mails go one per recipient, and the link page acts as that person only), the
  action (``do``) and the alert's state version when the mail was rendered (``v``): a link
  is refused once the alert has moved on (an old "resolve" cannot close a reopened alert).
  A verdict link (``do``: ``correct`` or ``false_alarm``) names the feedback it judges
  (``f``) too; it changes no state, so a newer state does not refuse it.
- :data:`MANAGER_TOKEN` (``m1.<payload>.<kid><mac>``): a manager's API bearer token, with
  its token id (``t``, for revocation), the manager's email (``sub``) and teams (``scp``:
  ``team:<name>``); see ``api/deps.py``.

Tags and MAC domains are those alerts used before ``shared.signing``, so tokens handed out
then still verify (their claims lack what came later: see :class:`OldLink`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.alerts.domain import VERDICTS
from shared.signing import Purpose, Signer, TokenInvalid

ALERT_LINK = Purpose("alert-link", tag="l1", domain=b"l1.")
MANAGER_TOKEN = Purpose("manager-token", tag="m1", domain=b"m1.")

ACTIONS = ("ack", "explore", "offer", "action", "confirm", "resolve")


class OldLink(TokenInvalid):
    """A genuine link from a mail rendered before links named their recipient and the
    alert's state: it cannot say who acts nor on which state, so it acts no more."""


@dataclass(frozen=True)
class ActionLink:
    notification_id: str
    alert_id: str
    recipient: str
    action: str
    version: int
    feedback_id: str | None = None  # the feedback a verdict link judges

    @property
    def is_verdict(self) -> bool:
        return self.action in VERDICTS

    def sign(self, signer: Signer, *, expires_at: datetime) -> str:
        claims: dict[str, Any] = {"n": self.notification_id, "a": self.alert_id, "r": self.recipient,
                                  "do": self.action, "v": self.version}
        if self.feedback_id is not None:
            claims["f"] = self.feedback_id
        return signer.sign(ALERT_LINK, claims, expires_at=expires_at)

    @classmethod
    def verify(cls, signer: Signer, token: str, *, now: datetime) -> ActionLink:
        """The link a token carries; raises ``TokenExpired``, :class:`OldLink` or ``TokenInvalid``."""
        claims: dict[str, Any] = signer.verify(ALERT_LINK, token, now=now)
        if "r" not in claims or "v" not in claims:
            raise OldLink("a link from before links named their recipient and state")
        try:
            link = cls(str(claims["n"]), str(claims["a"]), str(claims["r"]), str(claims["do"]), int(claims["v"]),
                       str(claims["f"]) if "f" in claims else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise TokenInvalid("damaged link payload") from exc
        if link.action not in ACTIONS and not link.is_verdict:
            raise TokenInvalid(f"unknown action {link.action!r}")
        if link.is_verdict and link.feedback_id is None:
            raise TokenInvalid("a verdict link without its feedback")
        return link
