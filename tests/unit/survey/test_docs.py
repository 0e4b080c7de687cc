"""Every route of survey is in its OpenAPI document (/docs), with the bodies the bulk upload takes."""

from __future__ import annotations

from fastapi.routing import APIRoute

from services.survey.app import create_app
from services.survey.settings import SurveySettings


def _api_routes(routes) -> list[APIRoute]:  # noqa: ANN001
    """The app's routes, those of the routers it includes too."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found += _api_routes(route.original_router.routes)
    return found


def test_docs_show_every_route():
    app = create_app(SurveySettings(keymoment_env="test"))
    spec = app.openapi()
    hidden = {"/metrics", "/s/static/survey.js"}  # Prometheus' and the page's script: not an API
    routes = {(r.path, m.lower()) for r in _api_routes(app.routes) for m in r.methods - {"HEAD"}
              if r.path not in hidden}
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert routes == documented
    for path in ("/v1/invitations", "/v1/invitations/bulk", "/v1/visits", "/s/{survey_id}/draft", "/u/{token}",
                 "/v1/surveys/{survey_id}/versions", "/v1/tokens"):
        assert path in spec["paths"], path
    bulk = spec["paths"]["/v1/invitations/bulk"]["post"]["requestBody"]["content"]
    assert set(bulk) == {"application/x-ndjson", "text/csv"}
    text = spec["components"]["schemas"]["Text"]
    assert text["required"] == ["zh", "en"]  # both languages, as the API requires
