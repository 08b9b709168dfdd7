"""The Stacks view: a FastAPI app Airflow's api-server mounts (see ``plugins/stackyard_ui.py``)."""
