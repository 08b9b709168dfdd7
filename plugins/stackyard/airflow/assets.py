"""Airflow Assets stackyard produces, so downstream DAGs can be scheduled on them."""

from airflow.sdk import Asset

#: Updated by the L3 gate on every promotion; the event's extra carries ``{"version": N}``.
L3_MANIFEST = Asset(name="l3_manifest", uri="stackyard://l3/manifest", group="stackyard")
