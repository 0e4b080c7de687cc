from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.runtime import serve


def main() -> None:
    serve(create_app, IntakeSettings())


if __name__ == "__main__":
    main()
