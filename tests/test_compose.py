"""docker-compose.yaml and the Dockerfile, checked statically (no Docker engine runs here).

They must describe the production-like stack: the services of Airflow's official 3.x compose
file (CeleryExecutor, Redis, scalable workers, Flower under a profile), an image built from our
Dockerfile with the same pinned tools as `make setup`, credentials mounted read-only and never
baked in, no unsafe default for any secret, and the connection ids and variables the code reads.
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
                    "airflow-worker", "airflow-triggerer", "flower"]
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
    assert set(AIRFLOW_SERVICES) | {"postgres", "redis"} <= set(SERVICES)
    commands = {name: SERVICES[name].get("command") for name in AIRFLOW_SERVICES[1:]}
    assert commands == {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                        "airflow-dag-processor": "dag-processor", "airflow-worker": "celery worker",
                        "airflow-triggerer": "triggerer", "flower": "celery flower"}
    assert SERVICES["flower"]["profiles"] == ["flower"], "Flower is optional"
    assert all("profiles" not in SERVICES[name] for name in AIRFLOW_SERVICES if name != "flower")


def test_workers_can_be_scaled():
    """`docker compose up --scale airflow-worker=N` fails on a fixed container name or host port."""
    worker = SERVICES["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["environment"]["DUMB_INIT_SETSID"] == "0"  # warm shutdown of Celery workers
    assert "inspect ping" in " ".join(worker["healthcheck"]["test"])
    # Every worker runs tasks, so each has the tools' credentials and the key secret.
    assert worker["secrets"] == ["stackyard_age_key"]
    assert mounts_of("airflow-worker") == mounts_of("airflow-scheduler")


def test_celery_uses_redis_and_the_metadata_db():
    env = env_of("airflow-worker")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://") and "@redis:6379/" in env["AIRFLOW__CELERY__BROKER_URL"]
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert "@postgres/" in env["AIRFLOW__CELERY__RESULT_BACKEND"]
    assert SERVICES["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "ports" not in SERVICES["redis"] and "ports" not in SERVICES["postgres"]


#: Secrets compose must refuse to start without: `${VAR:?message}` with a message that says how.
REQUIRED_SECRETS = {
    "AIRFLOW_FERNET_KEY": "Fernet.generate_key",
    "AIRFLOW_JWT_SECRET": "secrets.token_urlsafe",
    "POSTGRES_PASSWORD": "docs/setup.md",
    "_AIRFLOW_WWW_USER_PASSWORD": "no default",
    "STACKYARD_AGE_KEY_FILE": "age-keygen",
}


def _interpolations(text: str) -> dict[str, list[tuple[str, str]]]:
    """VAR -> [(operator, argument)] for every ${VAR}, ${VAR:-default}, ${VAR:?message} in ``text``."""
    found: dict[str, list[tuple[str, str]]] = {}
    for match in re.finditer(r"\$\{(\w+)(?:(:?[-?+])([^}]*))?\}", text):
        found.setdefault(match[1], []).append((match[2] or "", match[3] or ""))
    return found


@pytest.mark.parametrize("variable", sorted(REQUIRED_SECRETS))
def test_compose_refuses_to_start_without_each_secret(variable):
    text = (ROOT / "docker-compose.yaml").read_text()
    uses = _interpolations(text)[variable]
    assert uses, variable
    for operator, message in uses:
        assert operator == ":?", f"${{{variable}}} must be required (:?), not {operator!r} {message!r}"
        assert variable in message and REQUIRED_SECRETS[variable] in message, message


def test_no_secret_has_a_default_anywhere_in_compose():
    text = (ROOT / "docker-compose.yaml").read_text()
    for variable, uses in _interpolations(text).items():
        if re.search(r"PASSWORD|SECRET|FERNET|KEY", variable):
            assert all(op == ":?" for op, _ in uses), variable
    assert "airflow:airflow@" not in text and "example-only/age.key}" not in text


def test_init_refuses_the_example_only_age_key():
    init = " ".join(SERVICES["airflow-init"]["command"])
    check = re.search(r"if cmp -s (\S+) (\S+); then(.*?)exit 1", init, re.S)
    assert check, "airflow-init compares the key secret with the example-only key"
    assert check[1] == "/run/secrets/stackyard_age_key"
    assert check[2] == "/opt/airflow/include/keys/example-only/age.key"
    assert mounts_of("airflow-init")["/opt/airflow/include"][0] == "./include"  # so it can compare
    assert "STACKYARD_AGE_KEY_FILE" in check[3]


def test_stores_default_to_s3_when_given():
    from stackyard.settings import Settings

    env = env_of("airflow-scheduler")
    assert env["STACKYARD_S3_URL"] == "${STACKYARD_S3_URL:-}"
    assert env["STACKYARD_MANIFEST_STORE"] == "${STACKYARD_MANIFEST_STORE:-}"
    assert env["STACKYARD_RECORD_STORE"] == "${STACKYARD_RECORD_STORE:-}"
    # What the code makes of them, as compose hands them over (unset variables arrive empty).
    given = {"STACKYARD_HOME": env["STACKYARD_HOME"], "STACKYARD_S3_URL": "s3://acme-stackyard/prod",
             "STACKYARD_MANIFEST_STORE": "", "STACKYARD_RECORD_STORE": ""}
    settings = Settings.from_env(given)
    assert settings.manifest_store_url == "s3://acme-stackyard/prod/manifests"
    assert settings.records_url == "s3://acme-stackyard/prod/records"
    own = Settings.from_env({**given, "STACKYARD_RECORD_STORE": "s3://other/records"})
    assert own.records_url == "s3://other/records" and own.manifest_store_url.startswith("s3://acme-stackyard/")
    volume = Settings.from_env({**given, "STACKYARD_S3_URL": ""})
    assert volume.manifest_store_url == f"file://{env['STACKYARD_HOME']}/manifests"


def test_every_stackyard_variable_the_code_reads_is_set_or_documented():
    """Each STACKYARD_* the package reads is in compose's environment or named in docs/setup.md."""
    code = "\n".join(p.read_text() for p in (ROOT / "plugins" / "stackyard").rglob("*.py"))
    read = set(re.findall(r"\"(STACKYARD_[A-Z0-9_]+)\"", code))
    assert {"STACKYARD_REGISTRY", "STACKYARD_MANIFEST_STORE", "STACKYARD_S3_URL"} <= read
    compose_env = set(env_of("airflow-worker"))
    setup_doc = (ROOT / "docs" / "setup.md").read_text()
    cli_only = {"STACKYARD_API_URL", "STACKYARD_API_USER", "STACKYARD_API_PASSWORD"}  # CI's side
    for variable in sorted(read):
        assert variable in compose_env or variable in setup_doc, f"{variable}: not in compose nor docs/setup.md"
        if variable in cli_only:
            assert variable not in compose_env


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
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
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
    runs = [line for line in lines if line.startswith("RUN") and "install_tools.py" in line]
    assert len(runs) == 2, "fetch+install in the tools stage, --verify in the final image"
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


# ------------------------------------------------------------ the official Airflow Helm chart

HELM_VALUES = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
RBAC = list(yaml.safe_load_all((ROOT / "deploy" / "helm" / "rbac.yaml").read_text()))


def _helm_env() -> dict[str, str]:
    return {item["name"]: item["value"] for item in HELM_VALUES["env"]}


def test_helm_values_run_the_kubernetes_executor_on_the_stackyard_image():
    assert HELM_VALUES["executor"] == "KubernetesExecutor"
    airflow_pin = re.search(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert HELM_VALUES["airflowVersion"] == HELM_VALUES["defaultAirflowTag"] == airflow_pin
    images = HELM_VALUES["images"]
    assert images["pod_template"]["repository"] == images["airflow"]["repository"]
    assert images["pod_template"]["tag"] == images["airflow"]["tag"]
    assert "stackyard" in images["airflow"]["repository"] and "apache/airflow" not in images["airflow"]["repository"]
    assert HELM_VALUES["redis"]["enabled"] is False  # no Celery under the KubernetesExecutor
    assert HELM_VALUES["config"]["core"]["auth_manager"] == env_of("airflow-scheduler")["AIRFLOW__CORE__AUTH_MANAGER"]


def test_helm_values_give_every_connection_the_code_reads_from_secrets():
    from_secrets = {item["envName"]: item for item in HELM_VALUES["secret"]}
    ids = {name[len("AIRFLOW_CONN_"):].lower() for name in from_secrets if name.startswith("AIRFLOW_CONN_")}
    assert ids == CONNECTIONS
    for item in from_secrets.values():
        assert item["secretName"] and item["secretKey"]
    optional = yaml.safe_load(HELM_VALUES["extraEnv"])
    assert {e["name"][len("AIRFLOW_CONN_"):].lower() for e in optional} == OPTIONAL_CONNECTIONS
    assert all(e["valueFrom"]["secretKeyRef"]["optional"] is True for e in optional)


def test_helm_values_hold_no_secret_and_no_default_user():
    text = (ROOT / "deploy" / "helm" / "values.yaml").read_text()
    for key in ("fernetKey", "apiSecretKey", "jwtSecret", "webserverSecretKey"):
        assert key not in HELM_VALUES, f"{key}: a secret in the values file"
    for key in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert HELM_VALUES[key]
    assert HELM_VALUES["data"]["metadataSecretName"] and "metadataConnection" not in HELM_VALUES["data"]
    assert HELM_VALUES["createUserJob"]["enabled"] is False
    assert HELM_VALUES["webserver"]["defaultUser"]["enabled"] is False
    assert not re.search(r"password\s*[:=]\s*\S|aws_secret|BEGIN .*PRIVATE KEY|AGE-SECRET-KEY", text, re.I)


def test_helm_values_set_the_stackyard_settings_the_code_reads():
    from stackyard.settings import Settings

    env = _helm_env()
    settings = Settings.from_env(env)
    assert settings.registry_url.startswith("oci://")
    assert settings.manifest_store_url.startswith("s3://") and settings.records_url.startswith("s3://")
    assert env["STACKYARD_ROOT"] == env_of("airflow-scheduler")["STACKYARD_ROOT"]
    assert env["PYTHONPATH"] == env_of("airflow-scheduler")["PYTHONPATH"]


def test_rbac_binds_the_service_accounts_the_values_create():
    kinds = {(doc["kind"], doc["metadata"]["name"]): doc for doc in RBAC}
    deployer = kinds[("ClusterRoleBinding", "stackyard-deployer")]
    viewer = kinds[("ClusterRoleBinding", "stackyard-viewer")]
    assert [s["name"] for s in deployer["subjects"]] == [HELM_VALUES["workers"]["serviceAccount"]["name"]]
    assert [s["name"] for s in viewer["subjects"]] == [HELM_VALUES["apiServer"]["serviceAccount"]["name"]]
    rules = kinds[("ClusterRole", "stackyard-deployer")]["rules"]

    def allowed(group: str, resource: str, verb: str) -> bool:
        return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)

    # Ephemeral stacks: namespaces made, labelled, listed and deleted (airflow/hooks/namespaces.py).
    for verb in ("create", "patch", "list", "delete"):
        assert allowed("", "namespaces", verb)
    # helm releases are Secrets in the stack's namespace; the example charts' kinds.
    for group, resource in (("", "secrets"), ("", "services"), ("apps", "deployments"), ("", "pods")):
        assert allowed(group, resource, "create") and allowed(group, resource, "delete")
    viewer_rules = kinds[("ClusterRole", "stackyard-viewer")]["rules"]
    assert all(set(r["verbs"]) <= {"get", "list", "watch"} for r in viewer_rules)


def test_the_example_charts_kinds_are_all_allowed_to_the_deployer(helm_bin, tmp_path):
    """Every kind the example charts render (what a service chart typically holds) is in the role."""
    import subprocess

    rules = {(doc["metadata"]["name"]): doc["rules"] for doc in RBAC if doc["kind"] == "ClusterRole"}["stackyard-deployer"]
    for chart in sorted((ROOT / "include" / "charts").iterdir()):
        if not (chart / "Chart.yaml").is_file():
            continue
        out = subprocess.run([helm_bin, "template", "x", str(chart)], capture_output=True, text=True, check=True,
                             env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HELM_CACHE_HOME": str(tmp_path)}).stdout
        for doc in yaml.safe_load_all(out):
            if not doc:
                continue
            group = doc["apiVersion"].rsplit("/", 1)[0] if "/" in doc["apiVersion"] else ""
            resource = doc["kind"].lower() + ("es" if doc["kind"].endswith("s") else "s")
            assert any(group in r["apiGroups"] and resource in r["resources"] and "create" in r["verbs"]
                       for r in rules), f"{chart.name}: {doc['kind']} ({group or 'core'}) not allowed"
