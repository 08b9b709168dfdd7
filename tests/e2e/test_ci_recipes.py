"""The CI recipes of docs/ci/ run: each one's shell steps, extracted from the file as the CI system
would read it, against a real Airflow API server (``airflow standalone``), the kube sandbox, a
local chart registry and a local OCI registry for the image.

What the CI system itself provides is emulated: variables and secrets (``${{ vars.X }}``,
``${{ secrets.X }}``, GitLab CI/CD variables, Jenkins ``withCredentials``), ``$GITHUB_ENV``, the
checkout (the working directory is the service repository) and the job image (the stackyard
CLI, helm and sops are on PATH, as in the stackyard image). The image build is the one step not
run as written: no Docker engine runs here, so the image step is checked to build and push
``$IMAGE:$VERSION`` and is replaced by a push of a minimal image of that name through the OCI
distribution API; everything after it runs unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.e2e.airflow_server import airflow_server  # noqa: F401  (module fixture)
from tests.support.oci_registry import local_oci_registry

pytestmark = pytest.mark.slow

RECIPES = ROOT / "docs" / "ci"
SERVICE = "shop-api"
BIN = str(Path(sys.executable).parent)


@dataclass
class Step:
    name: str
    script: str
    env: dict[str, str] = field(default_factory=dict)
    builds_image: bool = False


# ----------------------------------------------------------------------------- the three readers

def _expand_github(value: object, context: dict[str, dict[str, str]]) -> str:
    def one(match: re.Match) -> str:
        scope, name = match[1], match[2]
        assert scope in context, f"unexpected expression ${{{{ {scope}.{name} }}}}"
        return context[scope][name]
    return re.sub(r"\$\{\{\s*(\w+)\.(\w+)\s*\}\}", one, str(value))


def github_steps(text: str, context: dict[str, dict[str, str]]) -> list[Step]:
    workflow = yaml.safe_load(text)
    jobs, done, ordered = workflow["jobs"], set(), []
    while len(ordered) < len(jobs):  # jobs in `needs` order
        ready = [name for name, job in jobs.items() if name not in done
                 and set([job.get("needs")] if isinstance(job.get("needs"), str) else job.get("needs") or []) <= done]
        assert ready, "a cycle in needs"
        ordered += ready
        done |= set(ready)
    top = {k: _expand_github(v, context) for k, v in (workflow.get("env") or {}).items()}
    steps = []
    for name in ordered:
        job = jobs[name]
        job_env = {**top, **{k: _expand_github(v, context) for k, v in (job.get("env") or {}).items()}}
        for step in job["steps"]:
            if "uses" in step:
                assert step["uses"].startswith("actions/checkout@"), step  # the checkout is the cwd
                continue
            env = {**job_env, **{k: _expand_github(v, context) for k, v in (step.get("env") or {}).items()}}
            steps.append(Step(f"{name}/{step['id']}", _expand_github(step["run"], context), env,
                              builds_image=step["id"] == "image"))
    return steps


def gitlab_steps(text: str, context: dict[str, dict[str, str]]) -> list[Step]:
    pipeline = yaml.safe_load(text)
    top = {k: str(v) for k, v in (pipeline.get("variables") or {}).items()}
    steps = []
    for stage in pipeline["stages"]:
        for name, job in pipeline.items():
            if isinstance(job, dict) and job.get("stage") == stage:
                env = {**context["variables"], **top, **{k: str(v) for k, v in (job.get("variables") or {}).items()}}
                script = "\n".join([*job.get("before_script", []), *job["script"]])
                steps.append(Step(name, script, env, builds_image=stage == "image"))
    return steps


def jenkins_steps(text: str, context: dict[str, dict[str, str]]) -> list[Step]:
    """Declarative pipeline: the environment block, then each stage's ``sh '''…'''`` steps."""
    environment = re.search(r"environment\s*\{(.*?)\n    \}", text, re.S)[1]
    env = dict(re.findall(r"^\s*(\w+)\s*=\s*'([^']*)'", environment, re.M))
    env.update(context["overrides"])
    steps = []
    stages = list(re.finditer(r"stage\('([^']+)'\)", text))
    for i, stage in enumerate(stages):
        body = text[stage.end(): stages[i + 1].start() if i + 1 < len(stages) else len(text)]
        credentials = {}
        for binding in re.finditer(r"usernamePassword\(credentialsId: '([^']+)', usernameVariable: '(\w+)', "
                                   r"passwordVariable: '(\w+)'\)", body):
            user, password = context["credentials"][binding[1]]
            credentials.update({binding[2]: user, binding[3]: password})
        for sh in re.finditer(r"sh '''(.*?)'''", body, re.S):
            steps.append(Step(stage[1], sh[1], {**context["builtins"], **env, **credentials},
                              builds_image=stage[1] == "Image"))
    assert steps, "no sh steps found"
    return steps


# ---------------------------------------------------------------------------------- the runner

def push_minimal_image(registry: str, reference: str) -> None:
    """What `docker build && docker push` leaves in a registry, for a one-layer image."""
    assert reference.startswith(registry + "/"), (reference, registry)
    repository, tag = reference[len(registry) + 1:].rsplit(":", 1)
    base = f"http://{registry}/v2/{repository}"

    def blob(data: bytes) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = urllib.request.urlopen(urllib.request.Request(f"{base}/blobs/uploads/", method="POST"))
        location = start.headers["Location"]
        location = location if location.startswith("http") else f"http://{registry}{location}"
        sep = "&" if "?" in location else "?"
        urllib.request.urlopen(urllib.request.Request(f"{location}{sep}digest={digest}", data=data, method="PUT",
                                                      headers={"Content-Type": "application/octet-stream"}))
        return {"digest": digest, "size": len(data)}

    import gzip
    import io
    import tarfile

    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    layer_gz = gzip.compress(layer.getvalue(), mtime=0)
    diff_id = "sha256:" + hashlib.sha256(layer.getvalue()).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(layer_gz)}],
    }
    urllib.request.urlopen(urllib.request.Request(
        f"{base}/manifests/{tag}", data=json.dumps(manifest).encode(), method="PUT",
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}))


def image_tag_exists(registry: str, repository: str, tag: str) -> bool:
    request = urllib.request.Request(f"http://{registry}/v2/{repository}/manifests/{tag}", method="HEAD",
                                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    try:
        return urllib.request.urlopen(request).status == 200
    except urllib.error.HTTPError:
        return False


def run_recipe(steps: list[Step], repo: Path, registry: str, home: Path) -> list[subprocess.CompletedProcess]:
    github_env = repo.parent / f"{repo.name}.github_env"
    github_env.write_text("")
    carried: dict[str, str] = {}
    results = []
    for step in steps:
        # The job image: stackyard (this checkout's: PYTHONPATH as in the image), helm and sops on PATH.
        env = {"PATH": f"{BIN}:/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", ""), "HOME": str(home),
               "STACKYARD_HOME": str(home / "stackyard"), "GITHUB_ENV": str(github_env), **step.env, **carried}
        if step.builds_image:
            # Checked as written, then replaced (no Docker engine): push $IMAGE:$VERSION over the OCI API.
            assert "docker build -t" in step.script and "docker push" in step.script, step.script
            reference = re.search(r'docker push "([^"]+)"', step.script)[1]
            resolved = subprocess.run(["bash", "-euc", _version_lines(step.script) + f'printf %s "{reference}"'],
                                      cwd=repo, env=env, capture_output=True, text=True, check=True).stdout
            push_minimal_image(registry, resolved)
            results.append(subprocess.CompletedProcess([step.name], 0, f"pushed {resolved}", ""))
            continue
        proc = subprocess.run(["bash", "-e", "-c", step.script], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=900, check=False)
        results.append(proc)
        assert proc.returncode == 0, f"{step.name} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        for line in github_env.read_text().splitlines():  # what GitHub does with $GITHUB_ENV
            key, _, value = line.partition("=")
            carried[key] = value
    return results


def _version_lines(script: str) -> str:
    """The lines of a step that set VERSION (to resolve the image reference it pushes)."""
    return "".join(line.strip() + "\n" for line in script.splitlines() if line.strip().startswith("VERSION="))


# ----------------------------------------------------------------------------------- the tests

@pytest.fixture(scope="module")
def image_registry(tmp_path_factory):
    with local_oci_registry(tmp_path_factory.mktemp("images")) as registry:
        yield registry


@pytest.fixture(scope="module")
def generated_chart(tmp_path_factory) -> Path:
    parent = tmp_path_factory.mktemp("chart")
    subprocess.run([str(Path(BIN) / "stackyard"), "chart", "init", SERVICE, "--dir", str(parent)], check=True,
                   capture_output=True)
    return parent / SERVICE


def service_repo(tmp_path: Path, chart: Path, version: str) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(chart, repo / "charts" / SERVICE)
    chart_yaml = repo / "charts" / SERVICE / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text().replace("version: 0.1.0", f"version: {version}"))
    (repo / "Dockerfile").write_text("FROM nginxinc/nginx-unprivileged:1.27-alpine\n")
    return repo


RECIPE_CASES = {
    "github": ("github-actions.yml", github_steps, "0.2.0"),
    "gitlab": ("gitlab-ci.yml", gitlab_steps, "0.3.0"),
    "jenkins": ("Jenkinsfile", jenkins_steps, "0.4.0"),
}


@pytest.mark.parametrize("platform", sorted(RECIPE_CASES))
def test_recipe_builds_publishes_and_gates(platform, airflow_server, image_registry, generated_chart, tmp_path):
    filename, reader, version = RECIPE_CASES[platform]
    repo = service_repo(tmp_path, generated_chart, version)
    api = {"STACKYARD_API_URL": airflow_server.server.url, "STACKYARD_API_USER": airflow_server.server.user,
           "STACKYARD_API_PASSWORD": airflow_server.server.password}
    chart_registry = airflow_server.stack.settings.registry_url  # the served Airflow reads this one
    image = f"{image_registry}/team/{SERVICE}"
    context = {
        "github": {
            "vars": {"IMAGE_REPOSITORY": image, "STACKYARD_REGISTRY": chart_registry, "STACKYARD_IMAGE": "unused",
                     "STACKYARD_API_URL": api["STACKYARD_API_URL"]},
            "secrets": {"STACKYARD_API_USER": api["STACKYARD_API_USER"],
                        "STACKYARD_API_PASSWORD": api["STACKYARD_API_PASSWORD"],
                        "REGISTRY_USER": "ci", "REGISTRY_PASSWORD": "unused-here"},
        },
        "gitlab": {"variables": {**api, "STACKYARD_REGISTRY": chart_registry, "CI_REGISTRY": image_registry,
                                 "CI_REGISTRY_IMAGE": image, "CI_REGISTRY_USER": "ci",
                                 "CI_REGISTRY_PASSWORD": "unused-here", "GITLAB_USER_LOGIN": "gitlab-ci",
                                 "CI_PIPELINE_URL": "https://gitlab.example/shop/-/pipelines/7"}},
        "jenkins": {
            "overrides": {"STACKYARD_REGISTRY": chart_registry, "STACKYARD_API_URL": api["STACKYARD_API_URL"],
                          "IMAGE_REPOSITORY": image},
            "credentials": {"stackyard-api": (api["STACKYARD_API_USER"], api["STACKYARD_API_PASSWORD"]),
                            "image-registry": ("ci", "unused-here")},
            "builtins": {"BUILD_URL": "https://jenkins.example/job/shop/7/", "BUILD_USER_ID": "jenkins-ci"},
        },
    }[platform]
    steps = reader((RECIPES / filename).read_text(), context)
    assert [s.builds_image for s in steps].count(True) == 1 and steps[0].builds_image, "the image comes first"
    if platform == "github":  # what the runner sets for every step
        for step in steps:
            step.env.update({"GITHUB_ACTOR": "octocat", "GITHUB_SERVER_URL": "https://github.com",
                             "GITHUB_REPOSITORY": "acme/shop-api", "GITHUB_RUN_ID": "7"})

    results = run_recipe(steps, repo, image_registry, tmp_path / "home")

    assert image_tag_exists(image_registry, f"team/{SERVICE}", version)
    output = "\n".join(r.stdout + r.stderr for r in results)
    assert "passes publish's checks" in output
    assert f"published {SERVICE} {version} sha256:" in output
    assert "PROMOTED" in output, output
    latest = airflow_server.stack.store.latest()
    assert latest.services[SERVICE].chart_version == version
    assert latest.provenance.requested_by in {"octocat", "gitlab-ci", "jenkins-ci"}
    assert api["STACKYARD_API_PASSWORD"] not in output
