"""The one mail queue: every mail the system sends goes through it.

- :mod:`shared.mail.message` builds the RFC 5322 bytes (fast, deterministic).
- :mod:`shared.mail.queue` is the ``mail_queue`` table's SQL: ``enqueue`` in the
  caller's transaction, claims, outcomes, status.
- :mod:`shared.mail.sender` is the background sender (persistent SMTP sessions,
  leases, capped backoff, per-recipient refusals, graceful stop).
- :mod:`shared.mail.runtime` wires all of it into a service:
  ``use_mail_queue(runtime, purposes=[...])``.
- :mod:`shared.mail.settings` holds the ``SMTP_*`` and ``MAIL_*`` settings.

This module imports nothing, so that ``shared.settings`` can use the settings
fragment without pulling in the sender.
"""
