"""The only place of alerts with SQL. Every time comes from the caller (its Clock), never
from the database's ``now()``, so tests can move time.

- :class:`AlertsRepository` (``alerts.py``, silences and manager tokens in ``records.py``):
  alerts, their feedback, history, notifications (their mails go to the shared mail queue,
  ``shared.mail.queue``), customers' moments, silences and manager tokens, managers' verdicts
  (``verdicts.py``) (implements ``ports.Repository``);
- ``backlog.py``: notifications the sender before the mail queue had not delivered, queued
  once at start.
"""

from services.alerts.repository.alerts import AlertsRepository, reading, unit_of_work

__all__ = ["AlertsRepository", "reading", "unit_of_work"]
