#!/bin/sh
# Thin wrapper: `infra/services.sh up|down|status [--only kafka,airflow,dask]` = `osr services ...`.
# Uses the project's venv; works before the `osr` entry point is installed.
set -e
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
exec "$root/.venv/bin/python" -m pipelines.ops.commands.services services "$@"
