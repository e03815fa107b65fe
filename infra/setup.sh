#!/usr/bin/env bash
# Set up the project on a fresh machine (Python 3.11, pip, apt): a .venv with the exact
# packages of requirements.lock, the project itself, and Java + Maven for the local
# Apache Kafka broker (its jars are fetched from Maven Central on first use).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for c in python3.11 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then PY="$c"; break; fi
  done
fi
[ -n "$PY" ] || { echo "[setup] error: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

have_mosquitto() { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; }  # Debian puts it in sbin
if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1 || ! have_mosquitto || ! command -v chromedriver >/dev/null 2>&1 || ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    say "installing Java 17 and Maven (the local Kafka broker) and Mosquitto (the MQTT broker) with apt"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless maven mosquitto chromium chromium-driver postgresql >/dev/null  # chromium: the Airflow UI browser test
  else
    echo "[setup] warning: java/mvn missing and apt-get unavailable: the local Kafka broker cannot start (OSR_BROKER=tansu works without Java)" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $PY"
  "$PY" -m venv .venv
fi
if ! cmp -s requirements.lock .venv/.installed-lock; then
  say "installing the pinned packages (requirements.lock, ~1 GB, a minute or two)"
  .venv/bin/python -m pip install -q --upgrade pip==24.3.1
  .venv/bin/python -m pip install -q --no-deps -r requirements.lock
  cp requirements.lock .venv/.installed-lock
fi
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null || .venv/bin/python -m pip install -q --no-deps -e .

# The one conflict pip reports is known and deliberate (mode-streaming declares croniter<6,
# Airflow needs >=6.2.2; mode only uses croniter for Service.crontab). Anything else is an error.
problems=$(.venv/bin/python -m pip check 2>&1 | grep -v "^mode-streaming .* croniter" | grep -v "^No broken requirements" || true)
if [ -n "$problems" ]; then echo "[setup] error: broken requirements:" >&2; echo "$problems" >&2; exit 1; fi

if command -v mvn >/dev/null 2>&1; then
  .venv/bin/python -c "from pipelines.ops.services import kafka_local as k; r = k.install(); print('[setup] Kafka', r.get('version'), 'jars in', r.get('libs'))"
fi
say "ready: .venv/bin/osr --help"
