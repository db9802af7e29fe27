"""The official client's API groups for tests, typed loosely: its models make every field
Optional, which tests that just read a simulated cluster's answers need not spell out."""

from __future__ import annotations

from typing import Any

from kubernetes import client


def core_api(api_client: client.ApiClient) -> Any:
    return client.CoreV1Api(api_client)


def apps_api(api_client: client.ApiClient) -> Any:
    return client.AppsV1Api(api_client)


def batch_api(api_client: client.ApiClient) -> Any:
    return client.BatchV1Api(api_client)


def authorization_api(api_client: client.ApiClient) -> Any:
    return client.AuthorizationV1Api(api_client)
