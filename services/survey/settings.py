from typing import ClassVar

from pydantic import Field

from shared.settings import ServiceSettings


class SurveySettings(ServiceSettings):
    service_name: ClassVar[str] = "survey"
    port: int = Field(8002, ge=1, le=65535, description="HTTP port of survey.")
