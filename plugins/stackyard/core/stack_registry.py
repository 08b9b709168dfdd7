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
                  order; an item is a name or {name: <service>, canary: true | {<canary fields>}}
                  (a mapping: canary first, its fields replacing the stack's, field by field)
    canary        how this stack's canary services go (docs/rollouts.md, "Canary first"):
                  {steps: [5, 25, 50], interval: 300, max_failed_checks: 1,
                  on_window_close: pause|abort, on_crash: resume|abort, resume_within: N,
                  traffic: {provider: gateway-api|ingress-nginx|route53|replicas, …},
                  analysis: [{type: prometheus|cloudwatch|http|chart-tests, …}]}.
                  The first form, {weight: W, check: {type: none|http, …}}, still loads: it is
                  read as steps: [W] and analysis: [] or [the http check] (one step, no router).
    windows       {timezone: <IANA>, allow: [{days: [mon, …], hours: "HH:MM-HH:MM"}],
                  freeze: ["YYYY-MM-DD" | "YYYY-MM-DD..YYYY-MM-DD"]}; absent = always open
    triggerers    {roles: [...], users: [...]} who may trigger a run by hand
    pin_images    true: the pods run the digests the charts locked at publish, whatever tag the
                  chart writes (docs/images.md); default false (the chart's tags, checked
                  against the lock before each deploy)
    description   free text shown on the DAG page

Production entries must take versions from another stack's health (``source.healthy_on``) and
must name their triggerers. A namespace may not be a system one (``kube-*``, ``default``) or the
gate's (``l3-*``), nor another stack's on the same connection.

The file is read by a YAML loader that refuses duplicate keys at any depth and reads dates as
text (so ``2027-02-30`` is an error naming its field, not a crash of the loader); each entry is
then checked by the pydantic models :class:`StackEntrySchema` (structure, types, ranges, unknown
fields) and :func:`parse_stack` (the rules between fields). Pydantic's errors are translated into
``stack <name>: <field path>: <problem>``. Pure: no Airflow, no I/O beyond parsing the text it is
given.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Annotated, Any, Literal, NamedTuple, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, Discriminator, Field, Tag, ValidationError, model_validator

from stackyard.core import names
from stackyard.core.canary import (
    CHECK_TYPES, TRAFFIC_PROVIDERS, AnalysisCheck, CanaryPlan, HttpAnalysis, ReplicasTraffic, TrafficConfig,
    check_names,
)
from stackyard.core.names import RELEASE_NAME_MAX as MAX_RELEASE_NAME
from stackyard.core.schema import Schema, field_path, problems
from stackyard.exceptions import InputError

DEFAULT_CONNECTION = "stackyard_kube"
PRODUCTION_PROFILE = "production"
DAG_ID_PREFIX = "rollout_"
#: Presets Airflow accepts as a schedule that make sense for a rollout cadence.
SCHEDULE_PRESETS = frozenset({"@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"})
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_CANARY_WEIGHT = 50
#: The interval of a canary written in the first form (``weight:``), which had no observation time.
FIRST_FORM_INTERVAL = 1
MAX_FOR_HOURS = 24 * 90
MAX_DESCRIPTION = 2000

_HOURS = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])")


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


class ServiceEntry(NamedTuple):
    """One service of a stack's list (a tuple: a registry may list tens of thousands of them)."""

    name: str
    canary: bool = False


@dataclass(frozen=True)
class CanaryPolicy:
    """How a service goes canary first: the steps (:class:`CanaryPlan`), the traffic provider that
    sets each step's share, and the checks analysed between steps. ``migrated`` says the entry was
    written in the first form (``weight``/``check``) and read as one step."""

    plan: CanaryPlan = field(default_factory=CanaryPlan)
    traffic: TrafficConfig = field(default_factory=lambda: ReplicasTraffic(provider="replicas"))
    analysis: tuple[AnalysisCheck, ...] = ()
    migrated: bool = False


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
    pin_images: bool = False
    #: services whose list item has a canary mapping of its own: their policy (the stack's,
    #: with that mapping's fields replacing its own)
    service_canary: Mapping[str, CanaryPolicy] = field(default_factory=dict)

    def canary_for(self, service: str) -> CanaryPolicy:
        return self.service_canary.get(service, self.canary)

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


# --- reading the file ----------------------------------------------------------------------------


class _RegistryLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML's safe loader (the C one when available: ~10x faster) without the timestamp rule:
    ``2027-02-30`` stays the text the schema checks, instead of a ValueError inside the loader."""


_RegistryLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class RegistryDocument:
    """The registry file as plain data, and the keys it repeats (``where`` → problem).

    ``duplicates`` is keyed by stack name (``""`` for keys outside any stack entry): a repeated
    key invalidates only the stack it is in.
    """

    data: Any
    duplicates: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"data": self.data, "duplicates": self.duplicates}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> RegistryDocument:
        return cls(value["data"], {str(k): list(v) for k, v in value["duplicates"].items()})


def parse_document(text: str, origin: str = "stacks.yaml") -> RegistryDocument:
    """The registry's YAML as plain data (dates as text) with every repeated key found."""
    loader = _RegistryLoader(text)
    try:
        node = loader.get_single_node()
        duplicates = _repeated_keys(node)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise InputError(f"{origin}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    return RegistryDocument(data, duplicates)


def _repeated_keys(root: yaml.Node | None) -> dict[str, list[str]]:
    """Repeated mapping keys at any depth, by stack (YAML itself lets the last one win silently)."""
    found: dict[str, list[str]] = {}
    pending: list[tuple[yaml.Node, tuple[Any, ...]]] = [(root, ())] if root is not None else []
    while pending:
        node, path = pending.pop()
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
                line = key_node.start_mark.line + 1
                if key in seen:
                    stack, where = _stack_and_field(path + (key,))
                    found.setdefault(stack, []).append(
                        f"{where}: the key {key!r} is repeated (lines {seen[key]} and {line}); "
                        "YAML would silently keep the last one")
                else:
                    seen[key] = line
                if not isinstance(value_node, yaml.ScalarNode):
                    pending.append((value_node, path + (key,)))
        elif isinstance(node, yaml.SequenceNode):
            pending.extend((item, path + (index,)) for index, item in enumerate(node.value)
                           if not isinstance(item, yaml.ScalarNode))
    return found


def _stack_and_field(path: tuple[Any, ...]) -> tuple[str, str]:
    if len(path) >= 3 and path[0] == "stacks":
        return str(path[1]), field_path(path[2:])
    if len(path) == 2 and path[0] == "stacks":  # the same stack name twice
        return str(path[1]), "name"
    return "", field_path(path)


def load_registry(text: str, origin: str = "stacks.yaml") -> Registry:
    """Parse and validate the registry text. Raises InputError only if nothing can be read."""
    return registry_from_document(parse_document(text, origin), origin)


def registry_from_document(document: RegistryDocument | Any, origin: str = "stacks.yaml") -> Registry:
    """Validate parsed registry data, entry by entry."""
    if not isinstance(document, RegistryDocument):
        document = RegistryDocument(document)
    data = document.data
    if not isinstance(data, Mapping) or not isinstance(data.get("stacks"), Mapping):
        raise InputError(f"{origin}: expected a top-level mapping 'stacks:' of stack name to entry")
    unknown = sorted(set(map(str, data)) - {"stacks"})
    if unknown:
        raise InputError(f"{origin}: unknown top-level field(s) {', '.join(unknown)}")
    if document.duplicates.get(""):
        raise InputError(f"{origin}: {'; '.join(document.duplicates[''])}")
    raw: Mapping[Any, Any] = data["stacks"]
    stacks: dict[str, Stack] = {}
    errors: dict[str, str] = {}
    for name, entry in raw.items():
        label = str(name)
        try:
            if label in document.duplicates:
                raise InputError(f"stack {label}: {'; '.join(document.duplicates[label])}")
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
            unknown = _services_outside(stack, stacks[other]) if other in stacks else None
            if unknown is None:
                continue
            index, service = unknown
            del stacks[name]
            errors[name] = (f"stack {name}: services[{index}]: unknown service {service!r}: stack {other!r}, "
                            f"where its versions qualify, does not deploy it")
            continue
        del stacks[name]
        errors[name] = f"stack {name}: source.healthy_on: {problem}"


def _services_outside(stack: Stack, source: Stack) -> tuple[int, str] | None:
    """The first service ``stack`` lists that its source stack's explicit list does not have."""
    if stack.services is None or source.services is None:
        return None  # "all": known only from L3, checked when the plan runs
    offered = {entry.name for entry in source.services}
    return next(((i, e.name) for i, e in enumerate(stack.services) if e.name not in offered), None)


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


# --- the schema of one entry -----------------------------------------------------------------------
# Field validators raise ValueError with the problem only; _translate adds "stack <name>: <path>: ".


def _is(check: Any, problem: str) -> AfterValidator:
    def validate(value: Any) -> Any:
        if not check(value):
            raise ValueError(problem.format(value=value))
        return value
    return AfterValidator(validate)


#: minute, hour, day of month, month, day of week (0 and 7 are Sunday), as croniter has them.
_CRON_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_PART = re.compile(r"(\*|([0-9]{1,2})(?:-([0-9]{1,2}))?)(?:/([0-9]{1,2}))?")


def _plain_cron_field(text: str, low: int, high: int) -> bool:
    """A field of numbers, ranges, steps and lists within bounds: a subset of what croniter
    accepts, checked without it (croniter takes ~0.4 ms per expression; a registry parse checks
    hundreds). Anything else (names, ``L``, ``#``) is left to croniter."""
    for part in text.split(","):
        match = _CRON_PART.fullmatch(part)
        if match is None:
            return False
        _, first, last, step = match.groups()
        if step is not None and int(step) == 0:
            return False
        if first is not None and not low <= int(first) <= (int(last) if last else high) <= high:
            return False
    return True


def _schedule(value: str | None) -> str | None:
    if value is None:
        return None
    if value.startswith("@"):
        if value not in SCHEDULE_PRESETS:
            raise ValueError(f"{value!r} is not one of {', '.join(sorted(SCHEDULE_PRESETS))}")
        return value
    fields = value.split()
    if len(fields) == 5 and all(_plain_cron_field(text, low, high) for text, (low, high) in zip(fields, _CRON_BOUNDS)):
        return value
    from croniter import croniter  # a pure library (Airflow's own cron parser)

    if len(fields) != 5 or not croniter.is_valid(value):
        raise ValueError(f"{value!r} is not a 5-field cron expression (minute hour day month weekday)")
    return value


def _timezone(zone: str) -> str:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{zone!r} is not a known IANA time zone") from None
    return zone


def _hours(text: str) -> tuple[int, int]:
    match = _HOURS.fullmatch(text)
    if not match:
        raise ValueError(f"expected 'HH:MM-HH:MM' (24 h clock), got {text!r}")
    h1, m1, h2, m2 = map(int, match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end > 24 * 60:
        raise ValueError(f"{text!r}: 24:00 is the latest end")
    if start == end:
        raise ValueError(f"{text!r} is an empty window")
    return start, end


def _freeze(item: str | date) -> Freeze:
    if isinstance(item, date):  # from Python callers; the file's loader keeps dates as text
        return Freeze(item, item)
    first_text, _, last_text = item.partition("..")
    try:
        first = date.fromisoformat(first_text.strip())
        last = date.fromisoformat(last_text.strip()) if last_text else first
    except ValueError as exc:
        reason = f" ({exc})" if "range" in str(exc) else ""  # e.g. 2027-02-30: day is out of range for month
        raise ValueError(f"{item!r} is not YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD{reason}") from None
    if last < first:
        raise ValueError(f"{item!r} ends before it starts")
    return Freeze(first, last)


def _non_empty(text: str) -> str:
    if not text.strip():
        raise ValueError(f"expected a non-empty string, got {text!r}")
    return text


_Text = Annotated[str, AfterValidator(_non_empty), Field(max_length=200)]
_Label = Annotated[str, _is(names.is_dns_label, "{value!r} is not a DNS-1123 label")]
_Name = Annotated[str, _is(names.is_role_or_user, "{value!r} is not a role or user name")]


class HealthySourceSchema(Schema):
    healthy_on: Annotated[str, _is(names.is_dns_label, "expected a stack name, got {value!r}")]
    for_hours: Annotated[float, Field(ge=0, le=MAX_FOR_HOURS)]


class NoCheckSchema(Schema):
    """The first form's ``check: {type: none}``: the chart's tests only."""

    type: Literal["none"]


def _check_tag(value: Any) -> str | None:
    return f"type={value.get('type')}" if isinstance(value, Mapping) else None


class CanarySchema(CanaryPlan):
    """``canary:`` of a stack, or of one service (then every field it sets replaces the stack's).

    The plan's fields (``steps``, ``interval``, …) are :class:`CanaryPlan`'s own, validated once.
    ``weight`` and ``check`` are the first form, read as ``steps: [weight]`` and ``analysis``."""

    weight: Annotated[int, Field(ge=1, le=MAX_CANARY_WEIGHT)] | None = None
    check: Annotated[Union[Annotated[NoCheckSchema, Tag("type=none")], Annotated[HttpAnalysis, Tag("type=http")]],
                     Discriminator(_check_tag)] | None = None
    traffic: TrafficConfig | None = None
    analysis: list[AnalysisCheck] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> "CanarySchema":
        if self.weight is not None and "steps" in self.model_fields_set:
            raise ValueError("weight is the first form of steps (weight: 10 is steps: [10]); give steps only")
        if self.check is not None and self.analysis is not None:
            raise ValueError("check is the first form of analysis; give analysis only")
        names = check_names(self.analysis or ())
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"analysis: check name(s) {', '.join(repeated)} repeated; give each check a name")
        return self


def _canary_tag(value: Any) -> str | None:
    return "~bool" if type(value) is bool else "~mapping" if isinstance(value, Mapping) else None


class ServiceSchema(Schema):
    name: str
    canary: Annotated[Union[Annotated[bool, Tag("~bool")], Annotated[CanarySchema, Tag("~mapping")]],
                      Discriminator(_canary_tag)] = False


def _shape_tag(value: Any) -> str | None:
    """Unions of a text form and a mapping or list form (``services``, ``source``): chosen by the
    input's type, so an error is reported for the form that was written, not for every form."""
    if type(value) is str:
        return "~text"
    return "~mapping" if isinstance(value, Mapping) else "~list" if isinstance(value, list) else None


#: A smart union (no Python call per item, unlike a callable discriminator): a registry may list
#: tens of thousands of services. _translate keeps only the errors of the form that was written.
_ServiceItem = Union[str, ServiceSchema]


class AllowSchema(Schema):
    days: Annotated[list[Literal[DAYS]], Field(min_length=1)] = list(DAYS)  # type: ignore[valid-type]
    hours: Annotated[str, AfterValidator(_hours)] = "00:00-24:00"


def _some_allowed(allow: list[AllowSchema] | None) -> list[AllowSchema] | None:
    if allow is not None and not allow:
        raise ValueError("an empty list would never open the window (leave 'allow' out for always open)")
    return allow


class WindowsSchema(Schema):
    timezone: Annotated[str, AfterValidator(_timezone)]
    allow: Annotated[list[AllowSchema] | None, AfterValidator(_some_allowed)] = None
    freeze: list[Annotated[Union[str, date], AfterValidator(_freeze)]] = []


class TriggerersSchema(Schema):
    roles: list[_Name] = []
    users: list[_Name] = []


class StackEntrySchema(Schema):
    """One entry of ``stacks:`` as the file writes it (see the module docstring)."""

    owner: _Text
    type: Literal["persistent", "production"]
    profile: _Label | None = None
    connection: Annotated[str, _is(names.is_connection_id, "{value!r} is not an Airflow connection id")] = DEFAULT_CONNECTION
    namespace: _Label | None = None
    schedule: Annotated[str | None, AfterValidator(_schedule)] = None
    source: Annotated[Union[Annotated[Literal["l3"], Tag("~text")], Annotated[HealthySourceSchema, Tag("~mapping")]],
                      Discriminator(_shape_tag)] = "l3"
    services: Annotated[Union[Annotated[Literal["all"], Tag("~text")],
                              Annotated[list[_ServiceItem], Field(min_length=1), Tag("~list")]],
                        Discriminator(_shape_tag)] = "all"
    canary: CanarySchema | None = None
    windows: WindowsSchema | None = None
    triggerers: TriggerersSchema | None = None
    pin_images: bool = False
    description: Annotated[str, Field(max_length=MAX_DESCRIPTION)] = ""


#: What a field holds, for errors about its type or range (pydantic's own words are about Python).
_EXPECTED = {
    "schedule": "expected a cron expression, a preset or null",
    "source": "expected 'l3' or {healthy_on: <stack>, for_hours: N}",
    "source.healthy_on": "expected a stack name",
    "source.for_hours": f"expected a number of hours from 0 to {MAX_FOR_HOURS}",
    "services": "expected 'all' or a non-empty list of services",
    "services[]": "expected a service name or {name, canary}",
    "services[].name": "expected a service name (DNS-1123 label)",
    "services[].canary": "expected true, false or a canary mapping",
    "canary": "expected a mapping {steps, interval, max_failed_checks, on_window_close, traffic, analysis}",
    "canary.weight": f"expected a percentage from 1 to {MAX_CANARY_WEIGHT}",
    "canary.check": "expected a mapping with a type",
    "canary.check.url": "expected an http(s) URL",
    "canary.check.expect_status": "expected an HTTP status code",
    "canary.check.timeout_seconds": "expected 0 < seconds <= 300",
    "canary.steps": "expected a list of weights (integers 1..99)",
    "canary.steps[]": "expected a weight, an integer 1..99",
    "canary.interval": "expected seconds, an integer of at least 1",
    "canary.max_failed_checks": "expected an integer of at least 1",
    "canary.resume_within": "expected seconds, an integer of at least 1",
    "canary.traffic": f"expected a mapping with a provider ({', '.join(TRAFFIC_PROVIDERS)})",
    "canary.traffic.port": "expected the Services' port, 1..65535",
    "canary.traffic.ttl": "expected seconds, 0..172800",
    "canary.analysis": "expected a list of checks",
    "canary.analysis[]": f"expected a mapping with a type ({', '.join(CHECK_TYPES)})",
    "canary.analysis[].max": "expected a number",
    "canary.analysis[].min": "expected a number",
    "canary.analysis[].expect_status": "expected an HTTP status code",
    "canary.analysis[].timeout_seconds": "expected 0 < seconds <= 300",
    "windows": "expected a mapping {timezone, allow, freeze}",
    "windows.timezone": "expected an IANA time zone like Europe/Berlin",
    "windows.allow": "expected a list of {days, hours}",
    "windows.allow[]": "expected {days: [mon, …], hours: 'HH:MM-HH:MM'}",
    "windows.allow[].days": f"expected a list of {', '.join(DAYS)}",
    "windows.allow[].days[]": f"expected one of {', '.join(DAYS)}",
    "windows.allow[].hours": "expected 'HH:MM-HH:MM' (24 h clock)",
    "windows.freeze": "expected a list of dates or date ranges",
    "windows.freeze[]": "expected YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD",
    "triggerers": "expected {roles: [...], users: [...]}",
    "triggerers.roles": "expected a list of names",
    "triggerers.users": "expected a list of names",
    "pin_images": "expected true or false",
    "description": f"expected text of at most {MAX_DESCRIPTION} characters",
}
# A service's own canary mapping holds the same fields as the stack's.
_EXPECTED.update({f"services[].{path}": text for path, text in list(_EXPECTED.items()) if path.startswith("canary.")})
#: Where pydantic's error locations name a union member rather than a field.
_UNION_MEMBERS = frozenset({"~text", "~mapping", "~list", "~bool", "str", "ServiceSchema", "type=none"}
                           | {f"type={t}" for t in CHECK_TYPES} | {f"provider={p}" for p in TRAFFIC_PROVIDERS})


def _translate(stack: str, error: ValidationError) -> InputError:
    """Pydantic's errors as ``stack <name>: <field path>: <problem>``, one clause per problem."""
    clauses = problems(error, expected=_EXPECTED, members=_UNION_MEMBERS, missing_each=True,
                        unknown_suffix=f" (known: {', '.join(StackEntrySchema.model_fields)})")
    return InputError(f"stack {stack}: " + "; ".join(clauses))


# --- one entry -----------------------------------------------------------------------------------


def parse_stack(name: object, data: object) -> Stack:
    """One validated :class:`Stack`, or InputError ``stack <name>: <field>: <problem>``."""
    if not isinstance(name, str) or not names.is_dns_label(name):
        raise InputError(f"stack {name!r}: name: not a DNS-1123 label (lowercase letters, digits, '-')")
    if not isinstance(data, Mapping):
        raise InputError(f"stack {name}: expected a mapping of fields, got {type(data).__name__}")
    try:
        entry = StackEntrySchema.model_validate(data)
    except ValidationError as exc:
        raise _translate(name, exc) from None
    return _stack(name, entry)


def _stack(name: str, entry: StackEntrySchema) -> Stack:
    """The rules between fields, on a structurally valid entry."""
    def error(where: str, problem: str) -> InputError:
        return InputError(f"stack {name}: {where}: {problem}")

    kind = StackKind(entry.type)
    production = kind is StackKind.PRODUCTION
    profile = entry.profile or (PRODUCTION_PROFILE if production else None)
    if profile is None:
        raise error("profile", "is required for a persistent stack")
    if production and profile != PRODUCTION_PROFILE:
        raise error("profile", f"a production stack deploys profile {PRODUCTION_PROFILE!r}, not {profile!r}")
    namespace = entry.namespace or name
    problem = names.namespace_problem(namespace)
    if problem:
        raise error("namespace" if entry.namespace else "name", f"{problem}; give the stack a namespace of its own")
    if entry.source == "l3":
        if production:
            raise error("source", "a production stack takes versions that ran healthy on another stack: "
                                  "{healthy_on: <stack>, for_hours: N}")
        source: L3Source | HealthySource = L3Source()
    else:
        source = HealthySource(entry.source.healthy_on, float(entry.source.for_hours))
    raw = entry.triggerers or TriggerersSchema()
    triggerers = Triggerers(tuple(raw.roles), tuple(raw.users))
    if production and not (triggerers.roles or triggerers.users):
        raise error("triggerers", "a production stack must list the roles or users that may trigger it")
    services, any_canary = _services(entry.services, error)
    return Stack(
        name=name, owner=entry.owner, kind=kind, profile=profile, connection=entry.connection, namespace=namespace,
        schedule=entry.schedule, source=source, services=services,
        canary=_canary(entry.canary), windows=_windows(entry.windows), triggerers=triggerers,
        description=entry.description, service_canary=_service_canaries(entry, any_canary),
        pin_images=entry.pin_images,
    )


def _services(value: Any, error: Any) -> tuple[tuple[ServiceEntry, ...] | None, bool]:
    """The list (None for ``all``) and whether any service goes canary first."""
    if value == "all":
        return None, False
    listed = [item if type(item) is str else item.name for item in value]
    flags = [type(item) is not str and item.canary is not False for item in value]
    services = tuple(map(_service_entry, zip(listed, flags)))
    any_canary = True in flags  # a C-speed scan    # One helm release per service (release name = service name), plus <name>-canary. The common
    # case is checked in bulk (a registry may list tens of thousands); the loop finds the culprit.
    if (max(map(len, listed)) <= MAX_RELEASE_NAME - len("-canary") and names.all_dns_labels(listed)
            and len(set(listed)) == len(listed)):
        return services, any_canary
    is_label = names.is_dns_label
    seen: set[str] = set()
    for index, (name, canary) in enumerate(services):
        where = f"services[{index}]" if type(value[index]) is str else f"services[{index}].name"
        longest = MAX_RELEASE_NAME - (len("-canary") if canary else 0)
        if len(name) > longest:
            raise error(where, f"{name!r} is longer than {longest} characters (helm release names)")
        if not is_label(name):
            raise error(where, f"{name!r} is not a service name (DNS-1123 label)")
        if name in seen:
            raise error(f"services[{index}]", f"service {name!r} is listed twice")
        seen.add(name)
    return services, any_canary


_service_entry = functools.partial(tuple.__new__, ServiceEntry)


_PLAN_FIELDS = tuple(CanaryPlan.model_fields)


def _canary(value: CanarySchema | None, base: CanarySchema | None = None) -> CanaryPolicy:
    """The policy of ``value`` (a stack's canary, or a service's over its stack's ``base``).

    A field the service's mapping sets replaces the stack's; the first form is migrated here
    (``weight: W`` → ``steps: [W]``, ``check`` → ``analysis``), so nothing downstream knows it."""
    if value is None and base is None:
        return _DEFAULT_POLICY  # frozen, shared: most stacks say nothing about canaries
    merged = {**_fields_set(base), **_fields_set(value)}
    traffic = merged.pop("traffic", None) or ReplicasTraffic(provider="replicas")
    analysis = tuple(merged.pop("analysis", None) or ())
    migrated = bool(merged.pop("migrated", False))
    return CanaryPolicy(plan=CanaryPlan(**merged), traffic=traffic, analysis=analysis, migrated=migrated)


_DEFAULT_POLICY = CanaryPolicy()


def _fields_set(layer: CanarySchema | None) -> dict[str, Any]:
    """What one canary mapping says, in the current form."""
    if layer is None:
        return {}
    fields = {name: getattr(layer, name) for name in layer.model_fields_set}
    if "weight" in fields:
        # the first form verified its one weight at once: observed 1 s unless an interval is given
        fields["steps"] = (fields.pop("weight"),)
        fields.setdefault("interval", FIRST_FORM_INTERVAL)
        fields["migrated"] = True
    if "check" in fields:
        check = fields.pop("check")
        fields["analysis"] = [check] if isinstance(check, HttpAnalysis) else []
        fields["migrated"] = True
    return fields


def _service_canaries(entry: StackEntrySchema, any_canary: bool) -> dict[str, CanaryPolicy]:
    # most stacks canary nothing (a registry may list tens of thousands of services): only those
    # that do are looked at item by item
    if not any_canary:
        return {}
    return {item.name: _canary(item.canary, entry.canary) for item in entry.services
            if type(item) is not str and isinstance(item.canary, CanarySchema)}


def _windows(value: WindowsSchema | None) -> Windows | None:
    if value is None:
        return None
    # The validators already turned hours into (start, end) minutes and freeze items into Freeze.
    allow = tuple(AllowedWindow(tuple(dict.fromkeys(item.days)), *item.hours) for item in value.allow or ())
    return Windows(value.timezone, allow, tuple(value.freeze))
