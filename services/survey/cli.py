"""``keymoment survey invite SURVEY FILE.csv``: invite the customers of a spreadsheet.

The file is read here (UTF-8 or GBK, comma, semicolon or tab; the columns of
``services/survey/bulk.py``), every row without a ``key`` column gets one derived
from the survey and the row's content, and the rows go to a running survey service
as NDJSON, 10,000 per request (``POST /v1/invitations/bulk``). Running the same file
again therefore invites nobody twice: each row is the same invitation. Prints a
summary and every row that was not queued; ``--report FILE`` writes the whole
per-row report as CSV (UTF-8 with a BOM, for Excel).

Exit code: 0 when every row was accepted (queued, or skipped by the contact rules),
1 when some rows were invalid, 2 when the upload failed.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
from collections import Counter
from pathlib import Path

import httpx

from services.survey import bulk

DEFAULT_URL = "http://127.0.0.1:8002"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="keymoment survey", description="Survey invitations from a spreadsheet.")
    commands = parser.add_subparsers(dest="command", required=True)
    invite = commands.add_parser("invite", help="invite the customers of a CSV file to a survey")
    invite.add_argument("survey", help="the survey id")
    invite.add_argument("file", type=Path, help="CSV: email, customer_id, phone, name, time_zone, locale, "
                        "touchpoint, location, key, context.<name> (UTF-8 or GBK)")
    invite.add_argument("--url", default=os.environ.get("KEYMOMENT_SURVEY_URL", DEFAULT_URL),
                        help=f"the survey service (default $KEYMOMENT_SURVEY_URL or {DEFAULT_URL})")
    invite.add_argument("--token", help="a token with invitations:write (default $KEYMOMENT_TOKEN, $ADMIN_TOKEN, "
                        "else ./var/dev-admin-token)")
    invite.add_argument("--report", type=Path, help="write the per-row report to this CSV file")
    args = parser.parse_args(argv)
    return invite_file(args.survey, args.file, url=args.url.rstrip("/"), token=_token(args.token), report=args.report)


def _token(given: str | None) -> str | None:
    if given:
        return given
    for name in ("KEYMOMENT_TOKEN", "ADMIN_TOKEN"):
        if os.environ.get(name):
            return os.environ[name]
    dev = Path("var/dev-admin-token")
    return dev.read_text().strip() if dev.exists() else None


def with_keys(survey_id: str, rows: list[bulk.Row]) -> list[dict]:
    """The readable rows, each with an idempotency key: its own, else one derived from the survey and
    its content (a repeated identical row gets the next occurrence's key)."""
    seen: Counter[str] = Counter()
    out = []
    for row in rows:
        if row.data is None:
            continue
        data = dict(row.data)
        if not data.get("key"):
            content = json.dumps(data, sort_keys=True, ensure_ascii=False)
            seen[content] += 1
            digest = hashlib.sha256(f"{survey_id}\n{content}\n{seen[content]}".encode()).hexdigest()[:40]
            data["key"] = f"file:{digest}"
        out.append({"row": row.number, **data})
    return out


def invite_file(survey_id: str, path: Path, *, url: str, token: str | None, report: Path | None) -> int:
    if token is None:
        print("keymoment survey: no token (--token, $KEYMOMENT_TOKEN or $ADMIN_TOKEN)", file=sys.stderr)
        return 2
    try:
        rows = bulk.parse_csv(path.read_bytes(), survey_id)
    except (OSError, bulk.BulkError) as exc:
        print(f"keymoment survey: {path}: {exc}", file=sys.stderr)
        return 2
    unreadable = [{"row": r.number, "status": "invalid", "errors": [r.error]} for r in rows if r.data is None]
    keyed = with_keys(survey_id, rows)
    results = list(unreadable)
    with httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {token}"}) as http:
        for start in range(0, len(keyed), bulk.MAX_ROWS):
            chunk = keyed[start:start + bulk.MAX_ROWS]
            body = "\n".join(json.dumps({k: v for k, v in r.items() if k != "row"}, ensure_ascii=False)
                             for r in chunk).encode()
            try:
                response = http.post("/v1/invitations/bulk", params={"survey_id": survey_id}, content=body,
                                     headers={"Content-Type": "application/x-ndjson"})
            except httpx.HTTPError as exc:
                print(f"keymoment survey: {url}: {exc}", file=sys.stderr)
                return 2
            if response.status_code != 202:
                print(f"keymoment survey: HTTP {response.status_code}: {response.text[:500]}", file=sys.stderr)
                return 2
            for result in response.json()["results"]:  # its rows are 1-based lines of this chunk
                results.append(result | {"row": chunk[result["row"] - 1]["row"]})
    results.sort(key=lambda r: r["row"])
    counts = Counter(r["status"] for r in results)
    reasons = Counter(r["reason"] for r in results if r.get("reason"))
    print(f"{path}: {len(results)} rows: {counts['queued']} queued, {counts['skipped']} skipped"
          + (f" ({', '.join(f'{k} {v}' for k, v in sorted(reasons.items()))})" if reasons else "")
          + f", {counts['invalid']} invalid")
    for r in results:
        if r["status"] == "invalid":
            print(f"  row {r['row']}: {'; '.join(r.get('errors') or [])}")
    if report is not None:
        with report.open("w", encoding="utf-8-sig", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["row", "invitation_id", "status", "reason", "send_at", "errors"])
            for r in results:
                writer.writerow([r["row"], r.get("invitation_id") or "", r["status"], r.get("reason") or "",
                                 r.get("send_at") or "", "; ".join(r.get("errors") or [])])
    return 1 if counts["invalid"] else 0
