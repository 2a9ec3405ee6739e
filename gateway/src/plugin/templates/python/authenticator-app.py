"""The component's entry point: the `authenticate` export of the `authenticator` world.

It signs the body with a webhook secret it can use but never read. componentize-py generates the
`wit_world` bindings from wit/ at build time.
"""
import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, secrets, types

from logic import header_name, secret_name


class WitWorld(wit_world.WitWorld):
    def authenticate(self, request: types.Request, attempt: types.AttemptInfo) -> types.AuthAdditions:
        conf = json.loads(config.get_json())
        name = secret_name(conf)
        handle = secrets.open(name)
        if handle is None:
            raise Err(types.PluginError_InvalidConfig(f"the webhook has no secret named {name}"))
        mac = secrets.hmac_sha256(handle, (request.body or "").encode())
        return types.AuthAdditions(headers=[(header_name(conf), "sha256=" + mac.hex())], query=[])
