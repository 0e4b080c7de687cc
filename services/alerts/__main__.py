from services.alerts.app import create_app
from services.alerts.settings import AlertsSettings
from shared.runtime import serve


def main() -> None:
    serve(create_app, AlertsSettings())


if __name__ == "__main__":
    main()
