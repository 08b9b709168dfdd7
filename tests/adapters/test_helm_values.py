"""Values reach helm from memory (memfd passed as /dev/fd/N), and leftovers of killed tasks are swept."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from stackyard.adapters.helm import HOME_PREFIX, Helm, HelmConfig, sweep_leftovers, values_fd


def test_values_are_an_inherited_in_memory_file_readable_as_dev_fd(tmp_path):
    with values_fd({"secrets": {"TOKEN": "s3cr3t-value"}}) as (args, fds):
        assert args == ["--values", f"/dev/fd/{fds[0]}"]
        assert os.readlink(f"/proc/self/fd/{fds[0]}").startswith("/memfd:")
        read = subprocess.run([sys.executable, "-c", f"print(open('/dev/fd/{fds[0]}').read())"], pass_fds=fds,
                              capture_output=True, text=True, check=True).stdout
    assert json.loads(read) == {"secrets": {"TOKEN": "s3cr3t-value"}}
    assert list(tmp_path.iterdir()) == []


def test_helm_template_reads_values_from_memory(tmp_path, chart_copy, helm_bin):
    helm = Helm(HelmConfig(home=tmp_path / "home", binary=helm_bin, base_env={"PATH": "/usr/bin:/bin"}))
    out = helm.template("r", chart_copy("orders"), namespace="n", values={"replicaCount": 7})
    assert "replicas: 7" in out


def test_sweep_removes_legacy_values_dirs_and_homes_of_dead_processes_only(tmp_path):
    legacy = tmp_path / "stackyard-values-abc"
    legacy.mkdir()
    (legacy / "values.json").write_text('{"secret": "x"}')
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    dead_home, live_home, old_home = (tmp_path / f"{HOME_PREFIX}{dead}-x", tmp_path / f"{HOME_PREFIX}{os.getpid()}-y",
                                      tmp_path / f"{HOME_PREFIX}abcdef")
    for path in (dead_home, live_home, old_home):
        path.mkdir()
    removed = sweep_leftovers(tmp_path)
    assert sorted(removed) == sorted([legacy, dead_home])
    assert live_home.exists() and old_home.exists() and not legacy.exists()
