// The plugin's logic as plain functions, so `node --test` can check them without a build.

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
