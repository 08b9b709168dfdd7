# syntax=docker/dockerfile:1
# stackyard's Airflow image: the official Airflow 3.3.2 image plus
#   - the pinned helm / kubectl / sops / age binaries, installed and checksum-verified by the same
#     scripts/install_tools.py + scripts/tools.lock.json that `make setup` uses, and the aws CLI
#     (scripts/awscli.requirements.txt, hash-pinned, its own venv);
#   - the pinned Python dependencies (requirements.txt under constraints.txt) and the project.
# No kubeconfig, AWS credentials or age key is baked in: docker-compose.yaml mounts them read-only.
# The tool lock pins linux x86_64 binaries: build with --platform linux/amd64 (compose sets it).

ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11

# --- tools: fetch and verify. Debian bookworm, because the lock pins bookworm .deb files; the
# npm client (for `npm pack`) is copied from the official node image.
FROM node:20-bookworm-slim AS node
FROM python:3.11-slim-bookworm AS tools
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
COPY scripts/install_tools.py scripts/tools.lock.json /src/scripts/
RUN apt-get update -q \
 && python3 /src/scripts/install_tools.py --bin-dir /opt/stackyard/bin --cache-dir /tmp/downloads \
      --tools helm,kubectl,sops,age,age-keygen \
 && rm -rf /var/lib/apt/lists/* /tmp/downloads

# --- the Airflow image
FROM ${AIRFLOW_IMAGE}
USER root
COPY --from=tools /opt/stackyard/bin/ /opt/stackyard/bin/
COPY scripts/install_tools.py scripts/tools.lock.json /opt/stackyard/scripts/
# Re-check in the final image: sha256 and reported version of every binary against the lock.
RUN python3 /opt/stackyard/scripts/install_tools.py --verify --bin-dir /opt/stackyard/bin \
      --tools helm,kubectl,sops,age,age-keygen
# The aws CLI (EKS kubeconfigs run `aws eks get-token`): PyPI awscli from hash-pinned wheels in a
# venv of its own (never the Airflow env's boto3/botocore), `aws` linked into /opt/stackyard/bin.
COPY scripts/awscli.requirements.txt /opt/stackyard/scripts/
RUN python3 /opt/stackyard/scripts/install_tools.py --python-tool awscli --venv-dir /opt/stackyard/tools/awscli \
      --bin-dir /opt/stackyard/bin
ENV PATH="/opt/stackyard/bin:${PATH}"
# Registry and manifest store of the compose set-up (a named volume mounted here).
RUN mkdir -p /opt/airflow/stackyard-state && chown airflow:0 /opt/airflow/stackyard-state \
 && chmod 2775 /opt/airflow/stackyard-state

USER airflow
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/stackyard/
RUN pip install --no-cache-dir -r /opt/stackyard/requirements.txt -c /opt/stackyard/constraints.txt

COPY --chown=airflow:0 pyproject.toml /opt/stackyard/src/
COPY --chown=airflow:0 plugins/ /opt/stackyard/src/plugins/
RUN pip install --no-cache-dir --no-deps /opt/stackyard/src

# The same files Airflow reads locally; compose mounts the working copy over them.
# include/keys/ is excluded by .dockerignore.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/
# As PYTHONPATH=$ROOT in local mode: `include.*` importable, and the plugins folder (mounted in
# compose) shadows the copy installed above, so edits show without a rebuild.
ENV PYTHONPATH="/opt/airflow/plugins:/opt/airflow" \
    STACKYARD_ROOT=/opt/airflow
