"""The only place of alerts with SQL. Every time comes from the caller (its Clock), never
from the database's ``now()``, so tests can move time.

- :class:`AlertsRepository` (``alerts.py``): alerts, their feedback, history, notifications,
  customers' moments, silences and manager tokens (implements ``ports.Repository``);
- :class:`NotificationDeliveries` (``deliveries.py``): the sender's delivery states.
"""

from services.alerts.repository.alerts import AlertsRepository, reading, unit_of_work
from services.alerts.repository.deliveries import NOTIFY_CHANNEL, NotificationDeliveries

__all__ = ["NOTIFY_CHANNEL", "AlertsRepository", "NotificationDeliveries", "reading", "unit_of_work"]
