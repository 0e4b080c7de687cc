from services.reporting.app import create_app
from services.reporting.settings import ReportingSettings
from shared.runtime import serve


def main() -> None:
    serve(create_app, ReportingSettings())


if __name__ == "__main__":
    main()
