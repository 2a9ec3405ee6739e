"""The component's entry point: the `transform` export of the `transformer` world.

componentize-py generates the `wit_world` bindings from wit/ at build time.
"""
import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import log, types

from logic import shape


class WitWorld(wit_world.WitWorld):
    def transform(self, event: str, context: types.WebhookContext, config: str) -> types.TransformOutcome:
        try:
            parsed = json.loads(event)
        except ValueError as e:
            raise Err(types.PluginError_InvalidEvent(f"the event is not JSON: {e}"))
        request = shape(parsed, context.url, context.event_type, json.loads(config))
        if request is None:
            return types.TransformOutcome_Skip("nothing to send for this event")
        log.log(log.Level.INFO, f"{{name}}: {request['method']} {request['url']}")
        return types.TransformOutcome_Send(
            types.Request(
                method=request["method"],
                url=request["url"],
                query=[],
                headers=list(request["headers"]),
                body=request["body"],
            )
        )
