// The plugin's logic as plain functions, so `node --test` can check them without a build.
//
// The body signed is the body as the authenticator gets it: if the webhook's transformer puts
// {"$secret": ...} placeholders in the body, the gateway fills them in only after this plugin
// runs (no secret value enters a plugin), so the signature would cover the placeholder body,
// not the body sent. Do not combine a body signature with body placeholders.

// The name of the webhook secret to sign with: config `secret`, default `signing_secret`
// (the webhook's signing secret).
export function secretName(config) {
  return (config && config.secret) || 'signing_secret';
}

// Lower-case hex of the bytes the host's HMAC returns.
export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// The header the signature goes in (config `header`, default `x-signature`).
export function headerName(config) {
  return (config && config.header) || 'x-signature';
}
