"""The AWS connection as the environment external tools read (helm's exec plugins, sops)."""

from __future__ import annotations


def aws_credentials_env(aws_conn_id: str, service: str = "sts", endpoint_variable: str = "AWS_ENDPOINT_URL_STS") -> dict[str, str]:
    """The AWS connection's credentials and region as the variables the AWS CLI, sops and the SDKs
    read; the connection's endpoint for ``service`` (if any) under ``endpoint_variable``."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    aws = AwsBaseHook(aws_conn_id=aws_conn_id, client_type=service)
    credentials = aws.get_credentials()
    env = {"AWS_ACCESS_KEY_ID": credentials.access_key, "AWS_SECRET_ACCESS_KEY": credentials.secret_key}
    if credentials.token:
        env["AWS_SESSION_TOKEN"] = credentials.token
    if aws.region_name:
        env["AWS_REGION"] = aws.region_name
    endpoint = aws.conn_config.get_service_endpoint_url(service)
    if endpoint:
        env[endpoint_variable] = endpoint
    return env
