// The component's entry point: the `transform` export of the `transformer` world.
import { log } from 'webhook-gateway:plugin/log@0.1.0';
import { shape } from './logic.js';

export function transform(event, context, config) {
  const request = shape(JSON.parse(event), context, JSON.parse(config));
  if (request === null) {
    return { tag: 'skip', val: 'nothing to send for this event' };
  }
  log('info', `{{name}}: ${request.method} ${request.url}`);
  return {
    tag: 'send',
    val: { method: request.method, url: request.url, query: [], headers: request.headers, body: request.body },
  };
}
