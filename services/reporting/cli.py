"""``keymoment privacy erase|show``: a client of reporting's erasure API (``/v1/privacy/erasures``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from shared.cli import credential


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keymoment privacy",
        description="Erase a customer from every service (PIPL / GDPR) through reporting's erasure API, and show "
        "what each service erased. Copies on Kafka expire with the topics' retention (7 days in deploy/k8s).",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=None,
                        help="reporting's base URL (default: $KEYMOMENT_REPORTING_URL or http://127.0.0.1:8004)")
    common.add_argument("--token", default=None,
                        help="a token with scope privacy:erase (default: $ADMIN_TOKEN, else ./var/dev-admin-token)")
    common.add_argument("--json", action="store_true", help="print the API's JSON answer")
    sub = parser.add_subparsers(dest="command", required=True)
    erase = sub.add_parser("erase", parents=[common], help="erase everything about a customer")
    erase.add_argument("--email", action="append", default=[], help="an email address of the customer (repeatable)")
    erase.add_argument("--phone", action="append", default=[], help="a phone number of the customer (repeatable)")
    erase.add_argument("--customer-id", action="append", default=[], help="the company's customer id (repeatable)")
    erase.add_argument("--wait", type=float, default=60.0,
                       help="seconds to wait for every service to report (default 60; 0: do not wait)")
    show = sub.add_parser("show", parents=[common], help="show an erasure and what each service erased")
    show.add_argument("erasure_id")
    return parser


def _print(erasure: dict[str, Any]) -> None:
    print(f"erasure {erasure['id']}: {erasure['status']} (requested by {erasure['requested_by']} at "
          f"{erasure['requested_at']}; contacts: "
          f"{', '.join(f'{n} {kind}' for kind, n in sorted(erasure['contacts'].items()))})")
    width = max([len(s) for s in [*erasure["services"], *erasure["waiting_for"]]] or [0])
    for service, report in sorted(erasure["services"].items()):
        counts = ", ".join(f"{table} {n}" for table, n in sorted(report["erased"].items())) or "nothing held"
        print(f"  {service.ljust(width)}  {counts}")
    for service in erasure["waiting_for"]:
        print(f"  {service.ljust(width)}  (not applied yet)")


def main(argv: list[str]) -> int:
    """Exit 0 when the erasure is done (every service applied it), 1 when it is not (yet) or the
    API failed, 2 on usage errors."""
    import httpx

    args = _parser().parse_args(argv)
    url = (args.url or os.environ.get("KEYMOMENT_REPORTING_URL") or "http://127.0.0.1:8004").rstrip("/")
    token = credential(args.token, env="ADMIN_TOKEN", dev_file="dev-admin-token")
    if not token:
        print("keymoment privacy: no token (use --token, ADMIN_TOKEN or run `make dev` for ./var/dev-admin-token)",
              file=sys.stderr)
        return 2
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            if args.command == "erase":
                body = {"emails": args.email, "phones": args.phone, "customer_ids": args.customer_id}
                if not any(body.values()):
                    print("keymoment privacy erase: give --email, --phone or --customer-id", file=sys.stderr)
                    return 2
                response = http.post("/v1/privacy/erasures", json=body)
                deadline = time.monotonic() + max(args.wait, 0)
                while response.status_code in (200, 202) and response.json()["status"] != "done" \
                        and time.monotonic() < deadline:
                    time.sleep(0.5)
                    response = http.get(f"/v1/privacy/erasures/{response.json()['id']}")
            else:
                response = http.get(f"/v1/privacy/erasures/{args.erasure_id}")
    except httpx.HTTPError as exc:
        print(f"keymoment privacy: reporting at {url} is not reachable: {exc}", file=sys.stderr)
        return 1
    try:
        answer = response.json()
    except ValueError:
        answer = {"detail": response.text[:500]}
    if response.status_code not in (200, 202):
        detail = answer.get("detail", answer) if isinstance(answer, dict) else answer
        print(f"keymoment privacy: reporting answered {response.status_code}: {detail}", file=sys.stderr)
        return 2 if response.status_code == 422 else 1
    if args.json:
        print(json.dumps(answer, ensure_ascii=False, indent=2))
    else:
        _print(answer)
    return 0 if answer["status"] == "done" else 1
