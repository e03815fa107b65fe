"""infra/deploy/ parses and keeps what the local cluster run proved (`osr cluster up`, test_cluster.py):
no secret written in the files, the store and snapshot volumes mounted where they are used, replication 3
with min ISR 2, one setting surface (OSR_*) for every process. No Docker here: these are the checks that
can run without it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "infra" / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
K8S = sorted((DEPLOY / "k8s").glob("*.yaml"))

#: Values that are placeholders for a secret, wherever they appear.
PLACEHOLDER = re.compile(r"change[-_ ]?me|changeme|replace[-_ ]?me|secret123|password123|\bhunter2\b|<password>"
                         r"|\bTODO\b", re.I)
#: Keys whose value is a secret.
SECRET_KEY = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|FERNET)", re.I)
#: A literal password inside a connection string (libpq `password=...` or a URL's user:pass@).
INLINE_PASSWORD = re.compile(r"password=\S|://[^/@\s:]+:[^/@\s]+@", re.I)
#: `${VAR}` / `${VAR:?message}`: a value compose takes from the environment at `up`.
FROM_ENV = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*(:?[?-][^}]*)?\}$")


def _walk(node, path=()):
    """(path, key, value) of every scalar in a parsed YAML tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, (*path, str(k)))
            if not isinstance(v, (dict, list)):
                yield path, str(k), v
    elif isinstance(node, list):
        for i, v in enumerate(node):
            if isinstance(v, (dict, list)):
                yield from _walk(v, (*path, str(i)))
            else:
                yield path, str(i), v


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _k8s_docs() -> list[dict]:
    return [d for f in K8S for d in yaml.safe_load_all(f.read_text()) if d]


def _offences(tree) -> list[str]:
    bad = []
    for path, key, value in _walk(tree):
        if not isinstance(value, str):
            continue
        where = "/".join((*path, key))
        if PLACEHOLDER.search(value):
            bad.append(f"{where}: placeholder {value!r}")
        if INLINE_PASSWORD.search(value):
            bad.append(f"{where}: a password inside a connection string {value!r}")
        if SECRET_KEY.search(key) and not FROM_ENV.match(value.strip()):
            bad.append(f"{where}: a secret written in the file ({key}={value!r}); read it from the environment")
    return bad


def test_files_exist_and_parse():
    assert COMPOSE.is_file() and K8S, f"no deploy files under {DEPLOY}"
    assert isinstance(_compose().get("services"), dict)
    kinds = [d["kind"] for d in _k8s_docs()]
    assert "ConfigMap" in kinds and "Deployment" in kinds, kinds
    assert (DEPLOY / "Dockerfile").read_text().lstrip().startswith(("#", "FROM"))


def test_the_checker_catches_placeholders():
    """The checks below must be able to fail: a tree with each kind of offence is caught."""
    bad = {"x": {"POSTGRES_PASSWORD": "airflow", "URL": "postgresql://a:b@db/x", "JWT": "change-me-please",
                 "CAT": "postgres:dbname=x password=y"}}
    assert len(_offences(bad)) == 4, _offences(bad)
    assert _offences({"x": {"POSTGRES_PASSWORD": "${OSR_PG_PASSWORD:?set it}"}}) == []


def test_compose_has_no_secret_in_it():
    assert _offences(_compose()) == []


def test_k8s_has_no_secret_in_it():
    docs = _k8s_docs()
    assert not [d for d in docs if d["kind"] == "Secret"], "a Secret with its value belongs outside the repository"
    assert [o for d in docs for o in _offences(d)] == []
    refs = {str(v) for d in docs for path, key, v in _walk(d) if key == "name" and "secretKeyRef" in path}
    assert refs == {"osr-db"}, refs


def test_dockerfile_bakes_no_secret():
    text = (DEPLOY / "Dockerfile").read_text()
    env_lines = [line for line in text.splitlines() if re.match(r"\s*(ENV|ARG)\b", line) or line.startswith("    ")]
    assert not [line for line in env_lines if SECRET_KEY.search(line) and "=" in line], env_lines


def _mounts(service: dict) -> set[str]:
    return {str(v).split(":")[0] for v in service.get("volumes", [])}


def _env(service: dict) -> dict:
    return service.get("environment") or {}


def test_compose_mounts_what_each_process_uses():
    services = _compose()["services"]
    store_users = ["sink", "store-init", "airflow-scheduler", "dask-worker"]
    snapshot_users = ["faust-worker", "airflow-scheduler", "dask-worker"]
    missing = [s for s in store_users if "store" not in _mounts(services[s])]
    missing += [s for s in snapshot_users if "snapshots" not in _mounts(services[s])]
    assert missing == [], f"services without the volume they use: {missing}"
    assert "store" not in _mounts(services["faust-worker"]), "Faust workers never open the store"
    declared = set(_compose()["volumes"])
    used = {m for s in services.values() for m in _mounts(s) if not m.startswith(("/", "."))}
    assert used <= declared, used - declared


def test_compose_runs_every_part_of_the_local_cluster():
    services = _compose()["services"]
    for part in ("kafka-1", "kafka-2", "kafka-3", "postgres", "faust-worker", "push-gateway", "sink",
                 "dask-scheduler", "dask-worker", "airflow-scheduler", "airflow-api-server"):
        assert part in services, part
    osr = _env(services["sink"])
    assert osr["OSR_TOPIC_REPLICATION"] == "3" and osr["OSR_BROKER"] == "external"
    assert osr["OSR_STORE_CATALOG"].startswith("postgres:")
    assert _env(services["airflow-scheduler"])["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    kafka = _env(services["kafka-1"])
    assert kafka["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3" and kafka["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert kafka["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"


def test_compose_kafka_matches_the_local_cluster_settings():
    """The brokers in compose run with the settings the local 3-broker cluster proved (cluster_kafka.REPLICATED)."""
    from pipelines.ops.services.cluster_kafka import REPLICATED

    kafka = _env(_compose()["services"]["kafka-2"])
    for key, value in REPLICATED.items():
        env_key = "KAFKA_" + key.upper().replace(".", "_")
        assert kafka.get(env_key) == value, (env_key, kafka.get(env_key), value)


@pytest.mark.parametrize("kind,name,claims", [("Deployment", "sink", {"osr-store"}),
                                              ("Deployment", "faust-worker", {"osr-snapshots"}),
                                              ("Deployment", "dask-worker", {"osr-store", "osr-snapshots"})])
def test_k8s_mounts_shared_claims(kind, name, claims):
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _k8s_docs()}
    spec = docs[(kind, name)]["spec"]["template"]["spec"]
    got = {v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes", []) if "persistentVolumeClaim" in v}
    assert got == claims
    for claim in claims:
        pvc = docs[("PersistentVolumeClaim", claim)]
        assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], f"{claim} is shared by several pods"
    mounted = {m["name"] for c in spec["containers"] for m in c.get("volumeMounts", [])}
    assert mounted == {v["name"] for v in spec["volumes"]}
