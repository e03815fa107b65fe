"""The local Airflow's authentication, without starting it: a real admin user (never `all_admins`), its
generated password in a 0600 file under OSR_HOME, and `osr services status` printing it only when asked.

A real start with login is in tests/browser/ (the UI refuses a wrong password and accepts this one).
"""

from __future__ import annotations

import argparse
import json
import os
import stat

import pytest

from pipelines.ops.commands import services as services_cli
from pipelines.ops.services import airflow_local
from pipelines.ops.services.processes import ServiceError


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("OSR_HOME", str(tmp_path))
    return tmp_path


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_password_is_generated_once_into_a_private_file(home):
    assert airflow_local.admin_password() is None
    path = airflow_local.ensure_admin_password()
    assert path == home / "secrets" / "airflow-passwords.json"
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    first = airflow_local.admin_password()
    assert first and len(first) >= 20
    assert json.loads(path.read_text()) == {airflow_local.ADMIN_USER: first}
    airflow_local.ensure_admin_password()
    assert airflow_local.admin_password() == first  # a restart keeps the password


def test_loose_permissions_are_tightened_and_a_broken_file_is_an_error(home):
    path = airflow_local.passwords_file()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"admin": "kept-password-123"}))
    os.chmod(path, 0o644)
    airflow_local.ensure_admin_password()
    assert _mode(path) == 0o600 and airflow_local.admin_password() == "kept-password-123"
    path.write_text("not json")
    with pytest.raises(ServiceError, match="not JSON"):
        airflow_local.ensure_admin_password()


def test_airflow_runs_simple_auth_with_our_admin_and_file(home):
    env = airflow_local.airflow_env({})
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(airflow_local.passwords_file())


class _Running:
    """Stands in for the Airflow service's pid file: `status` sees Airflow up."""

    def running_pid(self):
        return 4242


def _status_output(capsys, *flags) -> str:
    parser = argparse.ArgumentParser(prog="osr")
    services_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["services", "status", *flags])
    assert args.func(args) == 0
    return capsys.readouterr().out


def test_status_names_the_file_and_prints_the_password_only_when_asked(home, monkeypatch, capsys):
    airflow_local.ensure_admin_password()
    password = airflow_local.admin_password()
    monkeypatch.setattr(airflow_local, "SERVICE", _Running())
    monkeypatch.setattr(airflow_local, "health", lambda: None)
    plain = _status_output(capsys)
    assert "airflow" in plain and str(airflow_local.passwords_file()) in plain
    assert password not in plain
    assert password not in _status_output(capsys, "--json")
    assert "admin_password" not in airflow_local.status()
    assert password in _status_output(capsys, "--show-password")
    assert airflow_local.status(show_password=True)["admin_password"] == password
