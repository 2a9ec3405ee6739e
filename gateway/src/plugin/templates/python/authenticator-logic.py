"""The plugin's logic as plain functions, so `python -m unittest` can check them without a build.

The body signed is the body as the authenticator gets it: if the webhook's transformer puts
{"$secret": ...} placeholders in the body, the gateway fills them in only after this plugin runs
(no secret value enters a plugin), so the signature would cover the placeholder body, not the
body sent. Do not combine a body signature with body placeholders.
"""


def secret_name(config) -> str:
    """The webhook secret to sign with: config `secret`, default `signing_secret`."""
    return (config or {}).get("secret") or "signing_secret"


def header_name(config) -> str:
    """The header the signature goes in: config `header`, default `x-signature`."""
    return (config or {}).get("header") or "x-signature"
