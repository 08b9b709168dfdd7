"""docker-compose.yaml and the Dockerfile, checked statically (no Docker engine runs here).

They must describe the production-like stack: the services of Airflow's official 3.x compose
file (LocalExecutor, no Celery), an image built from our Dockerfile with the same pinned tools
as `make setup`, credentials mounted read-only and never baked in, and the connection ids the
code reads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
DOCKERIGNORE = (ROOT / ".dockerignore").read_text().split()
LOCK = json.loads((ROOT / "scripts" / "tools.lock.json").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW_SERVICES = ["airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer"]
CONNECTIONS = {"stackyard_kube", "stackyard_sops", "aws_default"}
OPTIONAL_CONNECTIONS = {"stackyard_webhook"}  # alerts: skipped when the connection does not exist


def env_of(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service]["environment"].items()}


def mounts_of(service: str) -> dict[str, tuple[str, str]]:
    """container path -> (source, mode) for short-syntax volumes."""
    result = {}
    for volume in SERVICES[service]["volumes"]:
        # The source may itself hold ':' (e.g. ${STACKYARD_KUBE_DIR:-~/.kube}); the target is absolute.
        match = re.fullmatch(r"(?P<src>.+?):(?P<tgt>/[^:]*)(?::(?P<mode>\w+))?", volume)
        assert match, volume
        result[match["tgt"]] = (match["src"], match["mode"] or "rw")
    return result


def dockerfile_instructions() -> list[str]:
    """Logical Dockerfile lines (continuations joined, comments dropped)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_services_of_the_official_layout_are_there():
    assert set(AIRFLOW_SERVICES) | {"postgres"} <= set(SERVICES)
    for name in ("airflow-worker", "redis", "flower"):
        assert name not in SERVICES, f"{name}: LocalExecutor set-up, no Celery"
    commands = {name: SERVICES[name].get("command") for name in AIRFLOW_SERVICES[1:]}
    assert commands == {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                        "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer"}


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_airflow_services_run_the_image_built_from_our_dockerfile(service):
    spec = SERVICES[service]
    assert spec["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    assert "apache/airflow" not in spec["image"]
    assert spec["image"] == SERVICES["airflow-scheduler"]["image"]
    assert spec["platform"] == "linux/amd64" == "linux/" + {"linux-x86_64": "amd64"}[LOCK["platform"]]


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_airflow_services_wait_for_their_dependencies(service):
    depends = SERVICES[service]["depends_on"]
    assert depends["postgres"] == {"condition": "service_healthy"}
    for name in depends:
        assert name in SERVICES
    if service != "airflow-init":
        assert depends["airflow-init"] == {"condition": "service_completed_successfully"}
        assert "healthcheck" in SERVICES[service]


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_airflow_environment(service):
    env = env_of(service)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__AUTH_MANAGER"] == \
        "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    # A shared JWT secret is required, never defaulted in the file.
    assert re.fullmatch(r"\$\{AIRFLOW_JWT_SECRET:\?[^}]+\}", env["AIRFLOW__API_AUTH__JWT_SECRET"])
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_connections_are_the_ids_the_code_reads(service):
    env = env_of(service)
    conns = {key[len("AIRFLOW_CONN_"):].lower(): json.loads(value)
             for key, value in env.items() if key.startswith("AIRFLOW_CONN_")}
    assert set(conns) == CONNECTIONS
    assert conns["stackyard_kube"]["conn_type"] == "kubernetes"
    assert conns["aws_default"]["conn_type"] == "aws"
    # The kubeconfig is read from the read-only ~/.kube mount, the age key from a compose secret.
    kube_path = conns["stackyard_kube"]["extra"]["kube_config_path"]
    kube_mount = [t for t, (src, _) in mounts_of(service).items() if ".kube" in src]
    assert len(kube_mount) == 1 and kube_path.startswith(kube_mount[0] + "/")
    assert env["KUBECONFIG"] == kube_path
    key_file = conns["stackyard_sops"]["extra"]["age_key_file"]
    assert key_file in {f"/run/secrets/{name}" for name in SERVICES[service]["secrets"]}
    assert "aws_access_key_id" not in json.dumps(conns).lower()


def test_connection_ids_match_the_code_and_local_mode():
    """The ids above are the ones stackyard's settings and hooks default to, and local mode sets."""
    code = "\n".join(p.read_text() for p in (ROOT / "plugins" / "stackyard").rglob("*.py"))
    defaults = set(re.findall(r"(?:default_conn_name|_conn_id)\s*(?::\s*str(?:\s*\|\s*None)?)?\s*=\s*\"(\w+)\"", code))
    assert defaults, "no default connection ids found in plugins/stackyard"
    assert defaults <= CONNECTIONS | OPTIONAL_CONNECTIONS, f"code reads {defaults}, compose provides {CONNECTIONS}"
    compose_text = (ROOT / "docker-compose.yaml").read_text()
    for optional in OPTIONAL_CONNECTIONS:
        assert f"AIRFLOW_CONN_{optional.upper()}" in compose_text, f"compose does not say how to set {optional}"
    local = re.findall(r"^export AIRFLOW_CONN_(\w+)=", _local_exports(), re.M)
    assert {name.lower() for name in local} == CONNECTIONS


def _local_exports() -> str:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_local_env", ROOT / "scripts" / "local_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.exports(ROOT)


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_code_is_mounted_and_credentials_are_mounted_read_only(service):
    mounts = mounts_of(service)
    env = env_of(service)
    assert mounts[env["AIRFLOW__CORE__DAGS_FOLDER"]][0] == "./dags"
    assert mounts[env["AIRFLOW__CORE__PLUGINS_FOLDER"]][0] == "./plugins"
    assert mounts["/opt/airflow/include"][0] == "./include"


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_credential_mounts_are_read_only(service):
    mounts = mounts_of(service)
    assert mounts["/home/airflow/.kube"] == ("${STACKYARD_KUBE_DIR:-~/.kube}", "ro")
    assert mounts["/home/airflow/.aws"] == ("${STACKYARD_AWS_DIR:-~/.aws}", "ro")
    for target, (source, mode) in mounts.items():
        if re.search(r"\.kube|\.aws|kubeconfig|credentials", source + target):
            assert mode == "ro", target
    env = env_of(service)
    assert env["AWS_SHARED_CREDENTIALS_FILE"].startswith("/home/airflow/.aws/")
    assert env["AWS_CONFIG_FILE"].startswith("/home/airflow/.aws/")
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} & set(env)


def test_age_key_is_a_secret_file_not_part_of_the_image():
    assert "stackyard_age_key" in COMPOSE["secrets"]
    assert "include/keys" in DOCKERIGNORE
    for pattern in (".aws", ".kube", ".venv", ".stackyard", ".git"):
        assert pattern in DOCKERIGNORE


def test_dockerfile_extends_the_pinned_airflow_image():
    airflow_pin = re.search(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert f"ARG AIRFLOW_IMAGE=apache/airflow:{airflow_pin}-python3.11" in DOCKERFILE
    froms = [line for line in dockerfile_instructions() if line.startswith("FROM")]
    assert froms[-1] == "FROM ${AIRFLOW_IMAGE}"


def test_dockerfile_installs_tools_with_the_same_installer_and_lock():
    lines = dockerfile_instructions()
    copies = [line for line in lines if line.startswith("COPY") and "install_tools.py" in line]
    assert copies and all("scripts/tools.lock.json" in line for line in copies)
    runs = [line for line in lines if line.startswith("RUN") and "install_tools.py" in line
            and "--python-tool" not in line]
    assert len(runs) == 2, "fetch+install in the tools stage, --verify in the final image"
    [aws] = [line for line in lines if line.startswith("RUN") and "--python-tool awscli" in line]
    assert "--bin-dir /opt/stackyard/bin" in aws  # on the image's PATH, like the binaries
    assert "--verify" in runs[1]
    tool_sets = [set(re.search(r"--tools (\S+)", run).group(1).split(",")) for run in runs]
    init = " ".join(SERVICES["airflow-init"]["command"])
    tool_sets.append(set(re.search(r"--tools (\S+)", init).group(1).split(",")))
    assert all(tools == tool_sets[0] for tools in tool_sets)
    assert {"helm", "kubectl", "sops", "age"} <= tool_sets[0] <= set(LOCK["tools"])
    assert any("PATH=\"/opt/stackyard/bin:" in line for line in lines)


def test_dockerfile_installs_the_locked_python_deps_and_the_project():
    lines = dockerfile_instructions()
    pip = [line for line in lines if line.startswith("RUN") and "pip install" in line]
    assert any("-r /opt/stackyard/requirements.txt" in line and "-c /opt/stackyard/constraints.txt" in line
               for line in pip)
    assert any(line.endswith("/opt/stackyard/src") for line in pip)


def test_dockerfile_bakes_no_credentials():
    for line in dockerfile_instructions():
        if line.startswith(("COPY", "ADD", "ENV", "ARG")):
            assert not re.search(r"\.kube|\.aws|kubeconfig|AWS_(ACCESS|SECRET|SESSION)|age\.key|include/keys",
                                 line, re.I), line
    assert "USER airflow" in DOCKERFILE
