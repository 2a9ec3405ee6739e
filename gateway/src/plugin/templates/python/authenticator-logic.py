"""The plugin's logic as plain functions, so `python -m unittest` can check them without a build."""


def secret_name(config) -> str:
    """The webhook secret to sign with: config `secret`, default `signing_secret`."""
    return (config or {}).get("secret") or "signing_secret"


def header_name(config) -> str:
    """The header the signature goes in: config `header`, default `x-signature`."""
    return (config or {}).get("header") or "x-signature"
