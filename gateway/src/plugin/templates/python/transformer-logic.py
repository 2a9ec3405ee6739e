"""The plugin's logic as a plain function, so `python -m unittest` can check it without a build.

Turns an event into a chat message (Slack/Discord-like `{"text": ...}`) posted to the webhook's
url. Returns None to skip the event.
"""
import json


def shape(event: dict, url: str, event_type: str, config) -> dict | None:
    title = event.get("message") or event.get("title") or event.get("event_type") or "event"
    status = str(event.get("status") or event_type).upper()
    prefix = (config or {}).get("prefix") or f"[{status}]"
    service = event.get("service") or {}
    suffix = f" ({service['name']})" if isinstance(service, dict) and service.get("name") else ""
    return {
        "method": "POST",
        "url": url,
        "headers": [("content-type", "application/json")],
        "body": json.dumps({"text": f"{prefix} {title}{suffix}"}),
    }
