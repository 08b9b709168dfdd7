#!/usr/bin/env bash
# Regenerate constraints.txt: a clean resolve of requirements.txt + requirements-dev.txt in a
# throw-away venv, frozen. Run after changing a pin; commit the three files together.
set -euo pipefail
cd "$(dirname "$0")/.."
pip_version=$(python3 -c 'import sys; sys.path.insert(0, "scripts"); import bootstrap; print(bootstrap.PIP_VERSION)')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --disable-pip-version-check "pip==$pip_version"
"$tmp/venv/bin/pip" install --quiet -r requirements.txt -r requirements-dev.txt
"$tmp/venv/bin/pip" check
{
  echo "# Full lock: 'pip freeze' of a clean resolve of requirements.txt + requirements-dev.txt"
  echo "# (Python $("$tmp/venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])'), pip $pip_version, $(uname -s | tr A-Z a-z) $(uname -m)). Used as 'pip install -c constraints.txt'."
  echo "# Regenerate with scripts/relock.sh; do not edit by hand."
  "$tmp/venv/bin/pip" freeze --disable-pip-version-check
} > constraints.txt
echo "relock: constraints.txt has $(grep -vc '^#' constraints.txt) pins"
