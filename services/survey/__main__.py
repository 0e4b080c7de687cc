from services.survey.app import create_app
from services.survey.settings import SurveySettings
from shared.runtime import serve


def main() -> None:
    serve(create_app, SurveySettings())


if __name__ == "__main__":
    main()
