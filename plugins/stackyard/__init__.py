"""stackyard: a Kubernetes deployment pipeline on Apache Airflow 3.

Layers, innermost first (each imports only the ones above it):

- ``stackyard.domain``    pure logic: values composition, chart profiles, L3 manifests, umbrella
                          charts. No Airflow, no subprocess, no environment.
- ``stackyard.tools``     the only place that builds command lines for helm and sops.
- ``stackyard.stores``    the manifest store and the chart registry backends.
- ``stackyard.hooks``     Airflow connections mapped to tool configuration.
- ``stackyard.operators`` one action each, ``template_fields`` declared.
"""
