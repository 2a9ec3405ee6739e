// The component's entry point: the `authenticate` export of the `authenticator` world.
// It signs the body with a webhook secret it can use but never read.
import { getJson } from 'webhook-gateway:plugin/config@0.1.0';
import { open, hmacSha256 } from 'webhook-gateway:plugin/secrets@0.1.0';
import { headerName, hex, secretName } from './logic.js';

export function authenticate(request, attempt) {
  const config = JSON.parse(getJson());
  const name = secretName(config);
  const handle = open(name);
  if (handle === undefined) {
    throw { tag: 'invalid-config', val: `the webhook has no secret named ${name}` };
  }
  const mac = hmacSha256(handle, new TextEncoder().encode(request.body ?? ''));
  return { headers: [[headerName(config), `sha256=${hex(mac)}`]], query: [] };
}
