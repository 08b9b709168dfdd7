"""The stack registry (``include/stacks.yaml``): persistent and production stacks and their owners' rules.

Each entry under ``stacks:`` describes one stack that receives service upgrades on its owner's
cadence. Entries are validated one by one: a bad entry is reported with its name and field and
leaves the other entries usable (its ``rollout_<stack>`` DAG is then absent, the others load).
Only a registry that cannot be read at all (YAML syntax, no ``stacks:`` mapping) fails as a whole.

Fields of an entry (``*`` = required)::

    owner*        team that owns the stack (DAG owner and tag ``owner:<team>``)
    type*         persistent | production (the ``stackyard.io/stack-type`` of its namespace)
    profile       chart profile to deploy with (persistent: required; production: production)
    connection    Airflow connection id of the cluster (default stackyard_kube)
    namespace     Kubernetes namespace of the stack (default: the stack's name)
    schedule      cron expression, preset (@hourly, @daily, …) or null for manual only
    source        l3 (latest L3 manifest) | {healthy_on: <stack>, for_hours: N}
    services      all (every service of the source, alphabetical) | a list, applied in that
                  order; an item is a name or {name: <service>, canary: true}
    canary        {weight: 1..50, check: {type: none} | {type: http, url: …, expect_status: 200,
                  timeout_seconds: 10}} — how this stack's canary services are verified
    windows       {timezone: <IANA>, allow: [{days: [mon, …], hours: "HH:MM-HH:MM"}],
                  freeze: ["YYYY-MM-DD" | "YYYY-MM-DD..YYYY-MM-DD"]}; absent = always open
    triggerers    {roles: [...], users: [...]} who may trigger a run by hand
    description   free text shown on the DAG page

Production entries must take versions from another stack's health (``source.healthy_on``) and
must name their triggerers. Pure: no Airflow, no I/O beyond parsing the text it is given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from stackyard.core.manifest import SERVICE_NAME_PATTERN
from stackyard.exceptions import InputError

DEFAULT_CONNECTION = "stackyard_kube"
PRODUCTION_PROFILE = "production"
DAG_ID_PREFIX = "rollout_"
#: Presets Airflow accepts as a schedule that make sense for a rollout cadence.
SCHEDULE_PRESETS = frozenset({"@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"})
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_CANARY_WEIGHT = 50
MAX_RELEASE_NAME = 53  # helm's limit

_NAME = re.compile(SERVICE_NAME_PATTERN)
_NAME_MATCH = _NAME.fullmatch
_ROLE_OR_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@ -]{0,99}$")
_CONN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
_ENTRY_FIELDS = frozenset({
    "owner", "type", "profile", "connection", "namespace", "schedule", "source", "services", "canary",
    "windows", "triggerers", "description",
})


class StackKind(str, Enum):
    PERSISTENT = "persistent"
    PRODUCTION = "production"


@dataclass(frozen=True)
class L3Source:
    """Versions come from the latest L3 manifest."""

    def describe(self) -> str:
        return "latest L3 manifest"


@dataclass(frozen=True)
class HealthySource:
    """Versions that ran healthy on ``stack`` for at least ``hours`` (the production quality level)."""

    stack: str
    hours: float

    def describe(self) -> str:
        return f"versions healthy on {self.stack} for at least {self.hours:g} h"


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    canary: bool = False


#: The canary check types a registry may name, defined once; each has an implementation in
#: ``stackyard.steps.rollouts.CHECKS`` (a test keeps the two equal).
CHECK_TYPES = ("none", "http")


@dataclass(frozen=True)
class CanaryCheck:
    """An extra verification of a canary after its chart tests: ``none`` or an ``http`` probe.

    ``url`` may use ``{service}``, ``{release}``, ``{namespace}`` and ``{stack}``.
    """

    type: str = "none"
    url: str | None = None
    expect_status: int = 200
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class CanaryPolicy:
    weight: int = 10
    check: CanaryCheck = field(default_factory=CanaryCheck)


@dataclass(frozen=True)
class AllowedWindow:
    """Open on ``days`` from ``start`` to ``end``, in minutes after local midnight (end up to 1440).

    ``end <= start`` means the window runs past midnight into the next day; ``days`` names the
    day it opens.
    """

    days: tuple[str, ...]
    start: int
    end: int


@dataclass(frozen=True)
class Freeze:
    first: date
    last: date  # inclusive


@dataclass(frozen=True)
class Windows:
    timezone: str
    allow: tuple[AllowedWindow, ...] = ()
    freeze: tuple[Freeze, ...] = ()


@dataclass(frozen=True)
class Triggerers:
    roles: tuple[str, ...] = ()
    users: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stack:
    name: str
    owner: str
    kind: StackKind
    profile: str
    connection: str
    namespace: str
    schedule: str | None
    source: L3Source | HealthySource
    services: tuple[ServiceEntry, ...] | None  # None = all services of the source
    canary: CanaryPolicy
    windows: Windows | None
    triggerers: Triggerers
    description: str = ""

    @property
    def dag_id(self) -> str:
        return dag_id_for(self.name)

    @property
    def canary_services(self) -> frozenset[str]:
        return frozenset(entry.name for entry in self.services or () if entry.canary)


@dataclass(frozen=True)
class Registry:
    """The valid stacks (in file order) and, per invalid entry, the reason it was left out."""

    stacks: dict[str, Stack]
    errors: dict[str, str]

    def error_report(self, origin: str) -> str:
        lines = [f"{origin}: {len(self.errors)} invalid stack entr{'y' if len(self.errors) == 1 else 'ies'} "
                 "(their rollout DAGs are not loaded; the other stacks' DAGs are):"]
        lines += [f"  - {message}" for message in self.errors.values()]
        return "\n".join(lines)


def dag_id_for(stack: str) -> str:
    return f"{DAG_ID_PREFIX}{stack}"


# --- loading -------------------------------------------------------------------------------------


def parse_document(text: str, origin: str = "stacks.yaml") -> Any:
    """The registry's YAML as plain data (the slow part for a large registry: callers may cache it)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader parses ~10x faster
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise InputError(f"{origin}: not valid YAML: {exc}") from None


def load_registry(text: str, origin: str = "stacks.yaml") -> Registry:
    """Parse and validate the registry text. Raises InputError only if nothing can be read."""
    return registry_from_document(parse_document(text, origin), origin)


def registry_from_document(document: Any, origin: str = "stacks.yaml") -> Registry:
    """Validate parsed registry data, entry by entry."""
    if not isinstance(document, Mapping) or not isinstance(document.get("stacks"), Mapping):
        raise InputError(f"{origin}: expected a top-level mapping 'stacks:' of stack name to entry")
    unknown = sorted(set(document) - {"stacks"})
    if unknown:
        raise InputError(f"{origin}: unknown top-level field(s) {', '.join(map(str, unknown))}")
    raw: Mapping[Any, Any] = document["stacks"]
    stacks: dict[str, Stack] = {}
    errors: dict[str, str] = {}
    for name, entry in raw.items():
        label = str(name)
        try:
            stacks[label] = parse_stack(name, entry)
        except InputError as exc:
            errors[label] = str(exc)
    _check_references(stacks, errors, raw)
    _check_unique_targets(stacks, errors)
    return Registry(stacks, errors)


def _check_references(stacks: dict[str, Stack], errors: dict[str, str], raw: Mapping[Any, Any]) -> None:
    """A ``healthy_on`` source must name another stack of the registry that is itself valid."""
    for name, stack in list(stacks.items()):
        if not isinstance(stack.source, HealthySource):
            continue
        other = stack.source.stack
        if other == name:
            problem = "a stack cannot qualify versions on itself"
        elif other not in raw:
            problem = f"no stack named {other!r} in the registry"
        elif other in errors:
            problem = f"stack {other!r} is itself invalid"
        else:
            continue
        del stacks[name]
        errors[name] = f"stack {name}: source.healthy_on: {problem}"


def _check_unique_targets(stacks: dict[str, Stack], errors: dict[str, str]) -> None:
    """Two entries on the same cluster and namespace would undo each other's upgrades."""
    seen: dict[tuple[str, str], str] = {}
    for name, stack in list(stacks.items()):
        key = (stack.connection, stack.namespace)
        if key in seen:
            del stacks[name]
            errors[name] = (f"stack {name}: namespace: {stack.namespace!r} on connection {stack.connection!r} "
                            f"is already stack {seen[key]!r}")
        else:
            seen[key] = name


# --- one entry -----------------------------------------------------------------------------------


class _Entry:
    """Reads fields of one entry; every error names the stack and the field."""

    def __init__(self, name: str, data: Mapping[str, Any]) -> None:
        self.name, self.data = name, data

    def error(self, where: str, problem: str) -> InputError:
        return InputError(f"stack {self.name}: {where}: {problem}")

    def text(self, key: str, *, required: bool = False, default: str | None = None,
             pattern: re.Pattern[str] | None = None, hint: str = "") -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self.error(key, "is required")
            return default
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected a non-empty string, got {value!r}")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.error(key, f"{value!r} is not {hint}")
        return value


def parse_stack(name: object, data: object) -> Stack:
    """One validated :class:`Stack`, or InputError ``stack <name>: <field>: <problem>``."""
    if not isinstance(name, str) or len(name) > 63 or not _NAME.fullmatch(name):
        raise InputError(f"stack {name!r}: name: not a DNS-1123 label (lowercase letters, digits, '-')")
    if not isinstance(data, Mapping):
        raise InputError(f"stack {name}: expected a mapping of fields, got {type(data).__name__}")
    entry = _Entry(name, data)
    unknown = sorted(set(map(str, data)) - _ENTRY_FIELDS)
    if unknown:
        raise entry.error(", ".join(unknown), f"unknown field (known: {', '.join(sorted(_ENTRY_FIELDS))})")

    owner = entry.text("owner", required=True)
    kind_text = entry.text("type", required=True)
    try:
        kind = StackKind(kind_text)
    except ValueError:
        raise entry.error("type", f"{kind_text!r} is not one of persistent, production") from None
    dns = "a DNS-1123 label"
    profile = entry.text("profile", pattern=_NAME, hint=dns,
                         default=PRODUCTION_PROFILE if kind is StackKind.PRODUCTION else None)
    if profile is None:
        raise entry.error("profile", "is required for a persistent stack")
    if kind is StackKind.PRODUCTION and profile != PRODUCTION_PROFILE:
        raise entry.error("profile", f"a production stack deploys profile {PRODUCTION_PROFILE!r}, not {profile!r}")
    connection = entry.text("connection", default=DEFAULT_CONNECTION, pattern=_CONN_ID, hint="an Airflow connection id")
    namespace = entry.text("namespace", default=name, pattern=_NAME, hint=dns)
    source = _source(entry, kind)
    triggerers = _triggerers(entry)
    if kind is StackKind.PRODUCTION and not (triggerers.roles or triggerers.users):
        raise entry.error("triggerers", "a production stack must list the roles or users that may trigger it")
    return Stack(
        name=name, owner=owner, kind=kind, profile=profile, connection=connection, namespace=namespace,  # type: ignore[arg-type]
        schedule=_schedule(entry), source=source, services=_services(entry), canary=_canary(entry),
        windows=_windows(entry), triggerers=triggerers, description=entry.text("description", default="") or "",
    )


def _schedule(entry: _Entry) -> str | None:
    value = entry.data.get("schedule")
    if value is None:
        return None
    if not isinstance(value, str):
        raise entry.error("schedule", f"expected a cron expression, a preset or null, got {value!r}")
    if value.startswith("@"):
        if value not in SCHEDULE_PRESETS:
            raise entry.error("schedule", f"{value!r} is not one of {', '.join(sorted(SCHEDULE_PRESETS))}")
        return value
    from croniter import croniter  # a pure library (Airflow's own cron parser)

    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise entry.error("schedule", f"{value!r} is not a 5-field cron expression (minute hour day month weekday)")
    return value


def _source(entry: _Entry, kind: StackKind) -> L3Source | HealthySource:
    value = entry.data.get("source", "l3")
    if value == "l3":
        if kind is StackKind.PRODUCTION:
            raise entry.error("source", "a production stack takes versions that ran healthy on another stack: "
                                        "{healthy_on: <stack>, for_hours: N}")
        return L3Source()
    if not isinstance(value, Mapping):
        raise entry.error("source", f"expected 'l3' or {{healthy_on: <stack>, for_hours: N}}, got {value!r}")
    unknown = sorted(set(map(str, value)) - {"healthy_on", "for_hours"})
    if unknown:
        raise entry.error("source", f"unknown field(s) {', '.join(unknown)}")
    other, hours = value.get("healthy_on"), value.get("for_hours")
    if not isinstance(other, str) or not _NAME.fullmatch(other):
        raise entry.error("source.healthy_on", f"expected a stack name, got {other!r}")
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 <= hours <= 24 * 90:
        raise entry.error("source.for_hours", f"expected a number of hours from 0 to 2160, got {hours!r}")
    return HealthySource(other, float(hours))


def _services(entry: _Entry) -> tuple[ServiceEntry, ...] | None:
    value = entry.data.get("services", "all")
    if value == "all":
        return None
    if not isinstance(value, list) or not value:
        raise entry.error("services", f"expected 'all' or a non-empty list of services, got {value!r}")
    services: list[ServiceEntry] = []
    seen: set[str] = set()
    # One helm release per service (release name = service name), plus <name>-canary.
    plain = ServiceEntry.__new__  # hot loop: a registry may list hundreds of services per stack
    for index, item in enumerate(value):
        canary = False
        if type(item) is str:
            name = item
        else:
            name, canary = _service_item(entry, f"services[{index}]", item)
        longest = MAX_RELEASE_NAME - (len("-canary") if canary else 0)
        if len(name) > longest or not _NAME_MATCH(name):
            problem = (f"{name!r} is longer than {longest} characters (helm release names)" if len(name) > longest
                       else f"{name!r} is not a service name (DNS-1123 label)")
            raise entry.error(f"services[{index}].name" if type(item) is not str else f"services[{index}]", problem)
        if name in seen:
            raise entry.error(f"services[{index}]", f"service {name!r} is listed twice")
        seen.add(name)
        service = plain(ServiceEntry)
        object.__setattr__(service, "name", name)
        object.__setattr__(service, "canary", canary)
        services.append(service)
    return tuple(services)


def _service_item(entry: _Entry, where: str, item: object) -> tuple[Any, bool]:
    if not isinstance(item, Mapping):
        raise entry.error(where, f"expected a service name or {{name, canary}}, got {item!r}")
    unknown = sorted(set(map(str, item)) - {"name", "canary"})
    if unknown:
        raise entry.error(where, f"unknown field(s) {', '.join(unknown)}")
    name, canary = item.get("name"), item.get("canary", False)
    if not isinstance(name, str):
        raise entry.error(f"{where}.name", f"{name!r} is not a service name (DNS-1123 label)")
    if not isinstance(canary, bool):
        raise entry.error(f"{where}.canary", f"expected true or false, got {canary!r}")
    return name, canary


def _canary(entry: _Entry) -> CanaryPolicy:
    value = entry.data.get("canary")
    if value is None:
        return CanaryPolicy()
    if not isinstance(value, Mapping):
        raise entry.error("canary", f"expected a mapping {{weight, check}}, got {value!r}")
    unknown = sorted(set(map(str, value)) - {"weight", "check"})
    if unknown:
        raise entry.error("canary", f"unknown field(s) {', '.join(unknown)}")
    weight = value.get("weight", CanaryPolicy.weight)
    if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MAX_CANARY_WEIGHT:
        raise entry.error("canary.weight", f"expected a percentage from 1 to {MAX_CANARY_WEIGHT}, got {weight!r}")
    return CanaryPolicy(weight=weight, check=_canary_check(entry, value.get("check")))


def _canary_check(entry: _Entry, value: object) -> CanaryCheck:
    if value is None:
        return CanaryCheck()
    if not isinstance(value, Mapping):
        raise entry.error("canary.check", f"expected a mapping with a type, got {value!r}")
    kind = value.get("type")
    if kind not in CHECK_TYPES:
        raise entry.error("canary.check.type", f"{kind!r} is not one of {', '.join(CHECK_TYPES)}")
    allowed = {"none": {"type"}, "http": {"type", "url", "expect_status", "timeout_seconds"}}[kind]
    unknown = sorted(set(map(str, value)) - allowed)
    if unknown:
        raise entry.error("canary.check", f"unknown field(s) for type {kind}: {', '.join(unknown)}")
    if kind == "none":
        return CanaryCheck()
    url, status = value.get("url"), value.get("expect_status", 200)
    timeout = value.get("timeout_seconds", 10)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise entry.error("canary.check.url", f"expected an http(s) URL, got {url!r}")
    try:
        url.format(service="s", release="r", namespace="n", stack="k")
    except (KeyError, IndexError, ValueError):
        raise entry.error("canary.check.url", "may only use {service}, {release}, {namespace} and {stack}") from None
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise entry.error("canary.check.expect_status", f"expected an HTTP status code, got {status!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 300:
        raise entry.error("canary.check.timeout_seconds", f"expected 0 < seconds <= 300, got {timeout!r}")
    return CanaryCheck("http", url, status, float(timeout))


def _windows(entry: _Entry) -> Windows | None:
    value = entry.data.get("windows")
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise entry.error("windows", f"expected a mapping {{timezone, allow, freeze}}, got {value!r}")
    unknown = sorted(set(map(str, value)) - {"timezone", "allow", "freeze"})
    if unknown:
        raise entry.error("windows", f"unknown field(s) {', '.join(unknown)}")
    zone = value.get("timezone")
    if not isinstance(zone, str):
        raise entry.error("windows.timezone", f"expected an IANA time zone like Europe/Berlin, got {zone!r}")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise entry.error("windows.timezone", f"{zone!r} is not a known IANA time zone") from None
    allow_raw, freeze_raw = value.get("allow", []), value.get("freeze", [])
    if not isinstance(allow_raw, list):
        raise entry.error("windows.allow", f"expected a list of {{days, hours}}, got {allow_raw!r}")
    if not isinstance(freeze_raw, list):
        raise entry.error("windows.freeze", f"expected a list of dates or date ranges, got {freeze_raw!r}")
    allow = tuple(_allowed(entry, f"windows.allow[{i}]", item) for i, item in enumerate(allow_raw))
    freeze = tuple(_freeze(entry, f"windows.freeze[{i}]", item) for i, item in enumerate(freeze_raw))
    return Windows(zone, allow, freeze)


def _allowed(entry: _Entry, where: str, item: object) -> AllowedWindow:
    if not isinstance(item, Mapping) or set(map(str, item)) - {"days", "hours"}:
        raise entry.error(where, f"expected {{days: [mon, …], hours: 'HH:MM-HH:MM'}}, got {item!r}")
    days = item.get("days", list(DAYS))
    if not isinstance(days, list) or not days or any(day not in DAYS for day in days):
        raise entry.error(f"{where}.days", f"expected a list of {', '.join(DAYS)}, got {days!r}")
    hours = item.get("hours", "00:00-24:00")
    match = _HOURS.fullmatch(hours) if isinstance(hours, str) else None
    if not match:
        raise entry.error(f"{where}.hours", f"expected 'HH:MM-HH:MM' (24 h clock), got {hours!r}")
    h1, m1, h2, m2 = map(int, match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end > 24 * 60:
        raise entry.error(f"{where}.hours", f"{hours!r}: 24:00 is the latest end")
    if start == end:
        raise entry.error(f"{where}.hours", f"{hours!r} is an empty window")
    return AllowedWindow(tuple(dict.fromkeys(days)), start, end)


def _freeze(entry: _Entry, where: str, item: object) -> Freeze:
    # YAML turns an unquoted 2026-12-24 into a date already.
    if isinstance(item, date):
        return Freeze(item, item)
    if not isinstance(item, str):
        raise entry.error(where, f"expected YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD, got {item!r}")
    first_text, _, last_text = item.partition("..")
    try:
        first = date.fromisoformat(first_text.strip())
        last = date.fromisoformat(last_text.strip()) if last_text else first
    except ValueError:
        raise entry.error(where, f"{item!r} is not YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD") from None
    if last < first:
        raise entry.error(where, f"{item!r} ends before it starts")
    return Freeze(first, last)


def _triggerers(entry: _Entry) -> Triggerers:
    value = entry.data.get("triggerers")
    if value is None:
        return Triggerers()
    if not isinstance(value, Mapping) or set(map(str, value)) - {"roles", "users"}:
        raise entry.error("triggerers", f"expected {{roles: [...], users: [...]}}, got {value!r}")
    lists = {}
    for key in ("roles", "users"):
        items = value.get(key, [])
        if not isinstance(items, list) or any(not isinstance(i, str) or not _ROLE_OR_USER.fullmatch(i) for i in items):
            raise entry.error(f"triggerers.{key}", f"expected a list of names, got {items!r}")
        lists[key] = tuple(items)
    return Triggerers(**lists)
