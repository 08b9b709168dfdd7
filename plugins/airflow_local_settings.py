"""Airflow's local settings (imported by every Airflow process; plugins/ is on its path, and on
PYTHONPATH in the image): refused input on Airflow's CLI as one line (stackyard.airflow.cli_errors)."""

from stackyard.airflow.cli_errors import install

install()
