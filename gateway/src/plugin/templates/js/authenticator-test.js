import { test } from 'node:test';
import assert from 'node:assert/strict';
import { headerName, hex, secretName } from './logic.js';

test('signs with the webhook signing secret unless the config names another', () => {
  assert.equal(secretName(null), 'signing_secret');
  assert.equal(secretName({ secret: 'partner_key' }), 'partner_key');
});

test('hex encodes every byte with two digits', () => {
  assert.equal(hex(new Uint8Array([0, 15, 255])), '000fff');
});

test('the header defaults to x-signature', () => {
  assert.equal(headerName({}), 'x-signature');
  assert.equal(headerName({ header: 'X-Sig' }), 'X-Sig');
});
