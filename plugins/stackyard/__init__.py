"""stackyard: a Kubernetes deployment pipeline on Apache Airflow 3.

Layers, outermost first; each imports only the layers below it (enforced by import-linter, see
``docs/architecture.md`` and ``.importlinter``):

- ``stackyard.ui`` | ``stackyard.cli``
                          the Stacks view (an Airflow plugin, reaching the cluster through the
                          Airflow layer's hooks) and the command line; neither imports the other.
- ``stackyard.airflow``   hooks (connections mapped to adapters), operators and task functions,
                          notifications, assets: what the DAG files in ``dags/`` are built from.
- ``stackyard.steps``     the application: what each workflow does (gate, personal stacks,
                          rollouts, publishing, the fleet view), over adapters and core.
- ``stackyard.adapters``  the only code that talks to the outside: helm, sops, the chart
                          registry, the manifest and record stores, metrics.
- ``stackyard.core``      pure rules and models: names, versions, values, charts, manifests,
                          umbrella, ephemeral stacks, the stack registry, rollout planning, the
                          fleet view's rules. No Airflow, subprocess, network or environment.

``stackyard.settings`` (where things are, from ``STACKYARD_*``) and ``stackyard.exceptions`` sit
beside the layers and import none of them. Dev-only code (local mode, the demo) is in ``dev/``
and the emulator in ``kube_sandbox/``, both outside this package.
"""
