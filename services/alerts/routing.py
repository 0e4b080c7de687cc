"""Routing rules: which team hears of an alert, and who at each escalation level.

The rules live in a YAML file (``ALERTS_ROUTES_FILE``; see
``routes.example.yaml``), validated once at start with errors that name the
offending entry. Routes are tried in order; the first whose matchers all
match wins; ``default_route`` takes the rest. A team names its people by
role (the "iron triangle": account, solution and delivery managers) and lists
escalation levels by role and/or extra addresses.

A route (or the file, for every route that names none) may set ``min_confidence``: the
calibrated P(negative) a verdict resting on the text alone needs to raise an alert on that
route (``ScoreResult.alerts_at``); unset, the scorer's own threshold
(``Scorer.alert_threshold``). Ratings and escalation cues alert whatever it says.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.mail.message import InvalidAddress, normalize_address

Role = Literal["account_manager", "solution_manager", "delivery_manager"]
ROLES: tuple[str, ...] = ("account_manager", "solution_manager", "delivery_manager")
_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$|^[^@\s<>\"]+@localhost$")
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, None: 1}


class RoutesError(ValueError):
    """The routes file cannot be used; the message says where and why."""


def _duration(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a duration is seconds or a string like 15m, 1h, 2d")
    if isinstance(value, int):
        seconds = value
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration; use seconds or 90s / 15m / 1h / 2d")
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


Duration = Annotated[int, BeforeValidator(_duration)]


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str | int) else value


Patterns = Annotated[list[str], BeforeValidator(_as_list)]



def _probability(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a probability; use a number such as 0.85 (0 < min_confidence <= 1)")
    return value


Confidence = Annotated[float, BeforeValidator(_probability), Field(gt=0.0, le=1.0)]
"""A calibrated P(negative) in (0, 1]: what a text-only negative verdict needs to alert."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlaOverrides(_Strict):
    """Time to acknowledge per severity, e.g. ``{-3: 10m, -2: 1h}``."""

    minus3: Duration | None = Field(None, alias="-3")
    minus2: Duration | None = Field(None, alias="-2")
    minus1: Duration | None = Field(None, alias="-1")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _keys_as_text(cls, data: Any) -> Any:
        return {str(k): v for k, v in data.items()} if isinstance(data, dict) else data

    def as_dict(self) -> dict[int, int]:
        values = {-3: self.minus3, -2: self.minus2, -1: self.minus1}
        return {k: v for k, v in values.items() if v is not None}


def _emails(values: list[str]) -> list[str]:
    found = []
    for address in values:
        if not _EMAIL.match(address.strip()):
            raise ValueError(f"{address!r} is not an email address")
        try:  # as the mail queue sends to it: a mistake stops the start, never a batch of alerts
            found.append(normalize_address(address.strip().lower()))
        except InvalidAddress as exc:
            raise ValueError(f"{address!r} cannot be mailed: {str(exc).split(' in ')[0]}") from None
    return found


class Level(_Strict):
    """One escalation level: the roles of the team and/or extra addresses to notify."""

    roles: list[Role] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)

    @field_validator("emails")
    @classmethod
    def _valid_emails(cls, value: list[str]) -> list[str]:
        return _emails(value)

    @model_validator(mode="after")
    def _someone(self) -> Level:
        if not self.roles and not self.emails:
            raise ValueError("an escalation level needs roles or emails")
        return self


class Team(_Strict):
    description: str | None = None
    account_manager: list[str] = Field(default_factory=list, description="Owns the customer relationship.")
    solution_manager: list[str] = Field(default_factory=list, description="Owns the product / service fix.")
    delivery_manager: list[str] = Field(default_factory=list, description="Owns the front line where it happened.")
    escalation: list[Level] | None = Field(
        None,
        min_length=1,
        description="Level 1 first; each missed SLA notifies the next level. "
        "Default: delivery managers, then account + solution managers (levels with nobody left out).",
    )
    sla: SlaOverrides | None = None

    @field_validator("account_manager", "solution_manager", "delivery_manager", mode="before")
    @classmethod
    def _valid_emails(cls, value: Any) -> list[str]:
        value = _as_list(value) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("expected an email address or a list of them")
        return _emails(value)

    @property
    def levels(self) -> list[Level]:
        if self.escalation is not None:
            return self.escalation
        default = [("delivery_manager",), ("account_manager", "solution_manager")]
        return [Level(roles=[r for r in roles if getattr(self, r)]) for roles in default
                if any(getattr(self, r) for r in roles)]

    @model_validator(mode="after")
    def _levels_reach_someone(self) -> Team:
        if not self.levels:
            raise ValueError("a team needs at least one manager address")
        for number, level in enumerate(self.levels, start=1):
            empty = [r for r in level.roles if not getattr(self, r)]
            if empty and not level.emails and len(empty) == len(level.roles):
                raise ValueError(f"escalation level {number} names only roles with nobody in them: {', '.join(empty)}")
        return self

    def recipients(self, level: int) -> list[str]:
        """Addresses of escalation level ``level`` (1-based); empty past the last level."""
        levels = self.levels
        if level < 1 or level > len(levels):
            return []
        spec = levels[level - 1]
        found: list[str] = []
        for role in spec.roles:
            found += getattr(self, role)
        found += spec.emails
        return list(dict.fromkeys(found))

    def everyone(self) -> list[str]:
        found: list[str] = []
        for level in range(1, len(self.levels) + 1):
            found += self.recipients(level)
        return list(dict.fromkeys(found + self.account_manager + self.solution_manager + self.delivery_manager))


class Match(_Strict):
    """Matchers of a route; each is a glob or a list of globs (any matches); all given must match."""

    location: Patterns | None = None
    touchpoint: Patterns | None = None
    channel: Patterns | None = None
    severity: list[Annotated[int, Field(ge=-3, le=-1)]] | None = None

    @field_validator("severity", mode="before")
    @classmethod
    def _severity_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) else value


class Route(_Strict):
    name: str | None = None
    match: Match = Field(default_factory=Match)
    team: str
    min_confidence: Confidence | None = Field(
        None, description="P(negative) a text-only verdict needs to alert on this route (default: the file's, "
        "else the scorer's threshold).",
    )


class DefaultRoute(_Strict):
    team: str
    min_confidence: Confidence | None = None


class RoutesFile(_Strict):
    sla: SlaOverrides | None = None
    min_confidence: Confidence | None = Field(
        None, description="The min_confidence of every route that names none (default: the scorer's threshold).",
    )
    teams: dict[str, Team] = Field(min_length=1)
    routes: list[Route] = Field(default_factory=list)
    default_route: DefaultRoute

    @model_validator(mode="after")
    def _teams_exist(self) -> RoutesFile:
        known = ", ".join(sorted(self.teams))
        for index, route in enumerate(self.routes):
            if route.team not in self.teams:
                raise ValueError(f"routes[{index}] ({route.name or 'unnamed'}): unknown team {route.team!r}; known teams: {known}")
        if self.default_route.team not in self.teams:
            raise ValueError(f"default_route: unknown team {self.default_route.team!r}; known teams: {known}")
        return self


@dataclass(frozen=True)
class Decision:
    route: str
    team_name: str
    team: Team
    min_confidence: float  # the P(negative) a text-only verdict needs to alert on this route


def _matches(patterns: list[str] | None, value: str | None) -> bool:
    if patterns is None:
        return True
    if value is None:
        return False
    folded = value.casefold()
    return any(fnmatch.fnmatchcase(folded, p.casefold()) for p in patterns)


class Router:
    """The validated rules, ready to route alerts."""

    def __init__(self, rules: RoutesFile, *, base_sla: dict[int, int], alert_threshold: float) -> None:
        """``alert_threshold``: the scorer's (``Scorer.alert_threshold``), the ``min_confidence``
        of a route when neither it nor the file names one."""
        self.rules = rules
        self._sla = {**base_sla, **(rules.sla.as_dict() if rules.sla else {})}
        default = rules.min_confidence if rules.min_confidence is not None else alert_threshold
        self._decisions = [
            Decision(route.name or f"routes[{index}]", route.team, rules.teams[route.team],
                     route.min_confidence if route.min_confidence is not None else default)
            for index, route in enumerate(rules.routes)
        ]
        fallback = rules.default_route
        self._default = Decision("default", fallback.team, rules.teams[fallback.team],
                                 fallback.min_confidence if fallback.min_confidence is not None else default)
        self.lowest_min_confidence = min(d.min_confidence for d in (*self._decisions, self._default))
        """No text-only verdict below this P(negative) alerts on any route: feedback below it is not routed."""

    @classmethod
    def load(cls, path: Path, *, base_sla: dict[int, int], alert_threshold: float) -> Router:
        return cls(parse_routes(path), base_sla=base_sla, alert_threshold=alert_threshold)

    def route(self, *, location: str | None, touchpoint: str | None, channel: str, severity: int) -> Decision:
        for route, decision in zip(self.rules.routes, self._decisions, strict=True):
            m = route.match
            if (
                _matches(m.location, location)
                and _matches(m.touchpoint, touchpoint)
                and _matches(m.channel, channel)
                and (m.severity is None or severity in m.severity)
            ):
                return decision
        return self._default

    def team(self, name: str) -> Team | None:
        return self.rules.teams.get(name)

    def teams_of(self, email: str) -> list[str]:
        """The teams that name ``email`` (any role or escalation level): a manager's teams by default."""
        address = email.strip().lower()
        return sorted(name for name, team in self.rules.teams.items() if address in team.everyone())

    def sla_seconds(self, severity: int, team: str | None = None) -> int:
        team_sla = self.rules.teams[team].sla if team and team in self.rules.teams else None
        overrides = team_sla.as_dict() if team_sla else {}
        return overrides.get(severity, self._sla[severity])


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_routes(path: Path) -> RoutesFile:
    """Read and validate a routes file; :class:`RoutesError` lists every problem with its location."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RoutesError(f"routes file {path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RoutesError(f"routes file {path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RoutesError(f"routes file {path}: expected a mapping with teams, routes and default_route")
    try:
        return RoutesFile.model_validate(data)
    except ValidationError as exc:
        problems = [f"  - {_where(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]
        raise RoutesError(f"routes file {path} is invalid:\n" + "\n".join(problems)) from None
