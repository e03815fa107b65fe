#!/usr/bin/env bash
# Regenerate requirements.lock from the project's .venv (after a deliberate upgrade there).
# `pip list --format=freeze` writes name==version for every package, also for one that was
# installed from a local wheel or a URL (where `pip freeze` would write `name @ file://...`,
# which no fresh machine can install). Then the layout test checks every line is a registry pin.
set -euo pipefail
cd "$(dirname "$0")/.."
{
  sed -n '1,/^#   infra\/lock.sh/p' requirements.lock | grep '^#'
  .venv/bin/python -m pip list --format=freeze --exclude-editable --disable-pip-version-check \
    | grep -v -i -E '^(osr-platform|pip|setuptools|wheel)==' | LC_ALL=C sort -f -t= -k1,1
} > requirements.lock.new
mv requirements.lock.new requirements.lock
.venv/bin/python -m pytest -q -p no:cacheprovider tests/layout/test_install_files.py
