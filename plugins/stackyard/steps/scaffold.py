"""``stackyard chart init``: a new service chart that follows the chart contract as generated.

The chart comes from a template folder (``stackyard/cli/templates/chart``, with ``__SERVICE__``
where the name goes) plus what depends on the installation:

- one profile per stack type the stack registry deploys (each stack's ``profile``) and
  ``ephemeral`` (the gate's and personal stacks' profile);
- ``.sops.yaml`` with one creation rule per profile: the example-only age recipient for
  ``ephemeral`` (local), a placeholder AWS KMS key ARN for every other profile, to be replaced
  by the stack type's real key before its secrets are added;
- ``profiles/ephemeral/secrets.yaml``: an example, encrypted here with the real sops to the
  rule's recipient, so the chart passes publish's "secrets are encrypted" check as generated.

The chart is written to a temporary folder beside the destination and renamed into place, so a
failure leaves nothing behind and an existing folder is never touched.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from stackyard.core.charts import PROFILE_SECRETS, PROFILE_VALUES, PROFILES_DIR
from stackyard.core.ephemeral import StackType
from stackyard.core.manifest import validate_service_name
from stackyard.core.stack_registry import Registry, StackKind
from stackyard.exceptions import InputError
from stackyard.adapters.sops import Sops

PLACEHOLDER = "__SERVICE__"
#: The public half of include/keys/example-only/age.key (the image ships no key files; a public
#: recipient is no secret). Example secrets are encrypted to it, so the demo key decrypts them.
EXAMPLE_ONLY_AGE_RECIPIENT = "age1pf8gevf3t48205gpyhvqkmcw0wggrne9a7ay7had6gzqngsvfgks026xcz"
LOCAL_PROFILE = StackType.EPHEMERAL.value
#: Helm release names are at most 53 characters and a canary release is ``<service>-canary``.
MAX_SERVICE_NAME = 53 - len("-canary")
EXAMPLE_SECRETS = {"secrets": {"API_TOKEN": "example-only-token-change-me"}}


@dataclass(frozen=True)
class ScaffoldProfile:
    name: str
    kind: str  # "ephemeral", or the stack kind (persistent, production) that deploys it

    @property
    def local(self) -> bool:
        return self.name == LOCAL_PROFILE

    def sops_rule(self) -> dict[str, str]:
        rule = {"path_regex": f"{PROFILES_DIR}/{re.escape(self.name)}/{re.escape(PROFILE_SECRETS)}$"}
        if self.local:
            rule["age"] = EXAMPLE_ONLY_AGE_RECIPIENT
        else:
            rule["kms"] = f"arn:aws:kms:REGION:ACCOUNT_ID:key/REPLACE-WITH-THE-{self.name.upper()}-KEY-ID"
        return rule

    def values(self) -> dict:
        replicas = {LOCAL_PROFILE: 1, StackKind.PERSISTENT.value: 2, StackKind.PRODUCTION.value: 3}
        return {"replicaCount": replicas.get(self.kind, 2),
                "config": {"LOG_LEVEL": "warn" if self.kind == StackKind.PRODUCTION.value else "info"}}


def scaffold_profiles(registry: Registry) -> list[ScaffoldProfile]:
    """``ephemeral`` first, then every profile a stack of the registry deploys, by name."""
    kinds: dict[str, str] = {}
    for stack in registry.stacks.values():
        kind = stack.kind.value
        # A profile deployed to production is treated as production (its key is the guarded one).
        if kinds.get(stack.profile) != StackKind.PRODUCTION.value:
            kinds[stack.profile] = kind
    kinds.pop(LOCAL_PROFILE, None)
    return [ScaffoldProfile(LOCAL_PROFILE, LOCAL_PROFILE)] + [ScaffoldProfile(n, k) for n, k in sorted(kinds.items())]


def init_chart(name: str, parent: str | Path, *, template_dir: Path, profiles: list[ScaffoldProfile],
               sops: Sops) -> Path:
    """Write the chart ``parent/name``; refuse an existing path or a name unfit for releases."""
    validate_service_name(name, "chart name")
    if len(name) > MAX_SERVICE_NAME:
        raise InputError(f"chart name: {name!r} is longer than {MAX_SERVICE_NAME} characters "
                         f"(its canary release {name}-canary must fit helm's 53)")
    parent = Path(parent)
    dest = parent / name
    if dest.exists() or dest.is_symlink():
        raise InputError(f"{dest} already exists; refusing to overwrite it (pick another name or --dir)")
    if not parent.is_dir():
        raise InputError(f"{parent} is not a directory")
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=parent))
    try:
        _render(template_dir, work, name, [p.name for p in profiles])
        for profile in profiles:
            folder = work / PROFILES_DIR / profile.name
            folder.mkdir(parents=True)
            header = f"# Profile {profile.name!r}: overrides of values.yaml for {profile.kind} stacks.\n"
            (folder / PROFILE_VALUES).write_text(header + yaml.safe_dump(profile.values(), sort_keys=False))
        sops_yaml = {"creation_rules": [p.sops_rule() for p in profiles]}
        (work / ".sops.yaml").write_text(
            "# One creation rule per profile: age (the example-only key) for local ephemeral stacks,\n"
            "# a placeholder KMS key ARN for every other profile: replace it with the stack type's key.\n"
            + yaml.safe_dump(sops_yaml, sort_keys=False))
        local = next(p for p in profiles if p.local)
        source = f"{name}/{PROFILES_DIR}/{local.name}/{PROFILE_SECRETS}"
        encrypted = sops.encrypt(yaml.safe_dump(EXAMPLE_SECRETS).encode(),
                                 recipients_args=["--age", EXAMPLE_ONLY_AGE_RECIPIENT], source=source)
        (work / PROFILES_DIR / local.name / PROFILE_SECRETS).write_bytes(encrypted)
        work.rename(dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return dest


def _render(template_dir: Path, dest: Path, name: str, profiles: list[str]) -> None:
    if not (template_dir / "Chart.yaml").is_file():
        raise InputError(f"chart template {template_dir} has no Chart.yaml (a broken installation?)")
    for source in sorted(template_dir.rglob("*")):
        target = dest / source.relative_to(template_dir)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        text = source.read_text().replace(PLACEHOLDER, name).replace("__PROFILES__", ", ".join(profiles))
        target.write_text(text)
