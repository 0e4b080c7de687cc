from typing import ClassVar

from pydantic import Field

from shared.settings import ServiceSettings


class AlertsSettings(ServiceSettings):
    service_name: ClassVar[str] = "alerts"
    port: int = Field(8003, ge=1, le=65535, description="HTTP port of alerts.")
