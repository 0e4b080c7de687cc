"""The ``keymoment`` command: one entry point, subcommands implemented where they belong.

Each subcommand is ``module:function``; the function takes the remaining
arguments (``list[str]``) and returns an exit code. Modules are imported only
when their command runs, so ``keymoment score`` does not load FastAPI.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "dev": ("keymoment.devstack.run:main", "run the whole system locally on embedded defaults"),
    "serve": ("keymoment.serve:main", "run one service: keymoment serve intake|survey|alerts|reporting"),
    "migrate": ("keymoment.serve:migrate_main", "apply a service's database migrations and exit"),
    "score": ("services.alerts.scoring.cli:main", "score JSON lines of feedback on stdin (MOT -3..+3)"),
    "scoring": ("services.alerts.cli:scoring_main",
                "scoring model: keymoment scoring export-verdicts | train --data verdicts.jsonl | train --from-database"),
    "keys": ("services.intake.cli:keys_main", "create, list or revoke intake API keys"),
    "import": ("services.intake.cli:import_main", "import feedback files: keymoment import suggestion-box FILE.csv"),
    "survey": ("services.survey.cli:main", "survey invitations: keymoment survey invite SURVEY FILE.csv"),
    "demo": ("services.reporting.demo:main", "send a realistic stream of feedback into a running system"),
    "asyncapi": ("keymoment.asyncapi:main", "print (or --write) the AsyncAPI document of the events"),
    "dlq": ("keymoment.dlq:main", "list, show and replay dead letters (Kafka .dlq topics, outbox rows set aside)"),
    "privacy": ("services.reporting.cli:main", "erase a customer everywhere, or show an erasure: keymoment privacy "
                "erase --email ADDR"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: keymoment COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"keymoment: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, func_name = COMMANDS[name][0].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"keymoment: command {name!r} is not available in this build ({module_name} missing)", file=sys.stderr)
            return 2
        raise
    return int(getattr(module, func_name)(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
