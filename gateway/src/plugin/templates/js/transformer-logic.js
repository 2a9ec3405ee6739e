// The plugin's logic as a plain function, so `node --test` can check it without a build.
// Turns an event into a chat message (Slack/Discord-like `{"text": ...}`) posted to the
// webhook's url. Return null to skip the event.
export function shape(event, context, config) {
  const title = event.message ?? event.title ?? event.event_type ?? 'event';
  const prefix = (config && config.prefix) || `[${String(event.status ?? context.eventType).toUpperCase()}]`;
  const service = event.service && event.service.name ? ` (${event.service.name})` : '';
  return {
    method: 'POST',
    url: context.url,
    headers: [['content-type', 'application/json']],
    body: JSON.stringify({ text: `${prefix} ${title}${service}` }),
  };
}
