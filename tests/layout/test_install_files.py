"""A fresh machine installs from the package registry only: no lock or requirements file may name a
local path, a URL or an editable install (a `file://` wheel passed CI once only because the
submitting machine still had the folder)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL_FILES = sorted({*ROOT.glob("requirements*.txt"), *ROOT.glob("requirements*.lock"), *ROOT.glob("**/requirements*.txt"),
                        *ROOT.glob("**/requirements*.lock")} - {p for p in ROOT.glob(".venv/**/*")} - {p for p in ROOT.glob("var/**/*")})
PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!_-]+(\s*;.*)?$")


def test_there_is_a_lock():
    assert ROOT / "requirements.lock" in INSTALL_FILES


@pytest.mark.parametrize("path", INSTALL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_line_is_a_registry_pin(path):
    bad = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split(" #")[0].strip()
        if not text or text.startswith("#"):
            continue
        if not PINNED.match(text) or "@" in text or "://" in text or text.startswith(("-e", "--editable", ".", "/")):
            bad.append(f"{path.name}:{n}: {line.strip()[:120]}")
    assert not bad, "install files must pin registry packages as name==version only:\n" + "\n".join(bad)


def test_checker_rejects_what_it_must():
    """The pattern itself refuses the forms that broke a fresh install."""
    for line in ("aiokafka @ file:///tmp/fdl/aiokafka-0.14.0.whl", "-e .", "pkg @ https://example.org/pkg.whl",
                 "./wheels/pkg.whl", "pkg>=1.0"):
        assert not PINNED.match(line) or "@" in line or "://" in line, line
    assert PINNED.match("faust-streaming==0.15.3")


def test_documented_regeneration_writes_registry_pins():
    """The lock's header names the regeneration script, and that script freezes with
    `pip list --format=freeze` (name==version even for a package installed from a local wheel)."""
    header = "\n".join(line for line in (ROOT / "requirements.lock").read_text().splitlines() if line.startswith("#"))
    assert "infra/lock.sh" in header
    script = (ROOT / "infra" / "lock.sh").read_text()
    assert "--format=freeze" in script and "pip freeze" not in script.replace("`pip freeze`", "")
