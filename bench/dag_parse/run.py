"""Parse time of the rollout DAG factory with a large stack registry, against a trivial DAG.

Generates a registry of 200 stacks x 300 services (explicit service lists, windows, canaries),
then times, in this process and with imports warm (as Airflow's DAG processor runs with
pre-imported modules), the parse of:

- a trivial DAG file (one DAG, one task): the baseline of this machine, this run;
- dags/rollout_stacks.py with the generated registry (goal: under 0.3 s per parse);
- dags/stack_registry_check.py with the generated registry (it reads the same file);
- every file of dags/ with the generated registry, and with the shipped include/stacks.yaml.

Each figure is the median of several parses (wall clock, and CPU time of this process beside it:
on a shared machine the wall clock also measures the neighbours); ratios are to the baseline.
Run: make bench.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
STACKS, SERVICES, REPEAT = 200, 300, 7
GOAL_SECONDS = 0.3

TRIVIAL = '''
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("trivial", schedule=None) as dag:
    EmptyOperator(task_id="noop")
'''


def generated_registry() -> dict:
    services = [f"svc-{i:03d}" for i in range(SERVICES)]
    stacks = {}
    for n in range(STACKS):
        production = n % 10 == 9
        entry = {
            "owner": f"team-{n % 17}", "type": "production" if production else "persistent",
            "namespace": f"stack-{n:03d}", "schedule": f"{n % 60} {n % 24} * * 1-5",
            "services": [{"name": s, "canary": True} if production and i % 50 == 0 else s for i, s in enumerate(services)],
            "windows": {"timezone": "Europe/Berlin", "allow": [{"days": ["mon", "tue", "wed", "thu"], "hours": "09:00-16:00"}],
                        "freeze": ["2026-12-18..2027-01-06"]},
            "triggerers": {"roles": [f"deployers-{n % 7}"]},
        }
        if production:
            entry["source"] = {"healthy_on": f"stack-{n - 1:03d}", "for_hours": 24}
        else:
            entry["profile"] = "qa1"
        stacks[f"stack-{n:03d}"] = entry
    return {"stacks": stacks}


CPU: dict[str, float] = {}  # path → median CPU seconds of its last parse_seconds()


def parse_seconds(path: Path) -> tuple[float, int]:
    from airflow.dag_processing.dagbag import DagBag

    times, cpu, count = [], [], 0
    for _ in range(REPEAT):
        started, started_cpu = time.perf_counter(), time.process_time()
        bag = DagBag(dag_folder=str(path), collect_dags=False)
        found = bag.process_file(str(path), only_if_updated=False)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        assert not bag.import_errors, bag.import_errors
        count = len(found)
    CPU[str(path)] = statistics.median(cpu)
    return statistics.median(times), count


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="dag-parse-") as tmp:
        trivial = Path(tmp) / "trivial_dag.py"
        trivial.write_text(TRIVIAL)
        registry = Path(tmp) / "stacks.yaml"
        registry.write_text(yaml.safe_dump(generated_registry(), sort_keys=False))
        parse_seconds(trivial)  # warm Airflow's imports before anything is timed
        baseline, _ = parse_seconds(trivial)

        rows = []
        os.environ["STACKYARD_STACKS"] = str(registry)
        factory, dags = parse_seconds(ROOT / "dags" / "rollout_stacks.py")
        factory_cpu = CPU[str(ROOT / "dags" / "rollout_stacks.py")]
        rows.append(("rollout_stacks.py, generated registry", factory, dags))
        check, _ = parse_seconds(ROOT / "dags" / "stack_registry_check.py")
        rows.append(("stack_registry_check.py, generated registry", check, 0))
        for label, stacks_file in (("generated registry", registry), ("include/stacks.yaml", ROOT / "include" / "stacks.yaml")):
            os.environ["STACKYARD_STACKS"] = str(stacks_file)
            total, count = 0.0, 0
            for path in sorted((ROOT / "dags").glob("*.py")):
                seconds, found = parse_seconds(path)
                total, count = total + seconds, count + found
            rows.append((f"all of dags/ ({len(list((ROOT / 'dags').glob('*.py')))} files), {label}", total, count))

    size = len(yaml.safe_dump(generated_registry()))
    print(f"dag_parse: {STACKS} stacks x {SERVICES} services ({size / 1e6:.1f} MB of YAML); median of {REPEAT} parses, warm imports")
    print(f"  {'trivial DAG file (baseline)':<55} {baseline * 1000:8.1f} ms   1 DAG")
    for label, seconds, count in rows:
        print(f"  {label:<55} {seconds * 1000:8.1f} ms  {count:4d} DAGs  {seconds / baseline:6.1f}x baseline")
    ok = factory < GOAL_SECONDS
    print(f"  goal: rollout_stacks.py under {GOAL_SECONDS} s per parse: {'met' if ok else 'NOT met'} ({factory:.3f} s; "
          f"CPU {factory_cpu:.3f} s, load average {os.getloadavg()[0]:.1f})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
