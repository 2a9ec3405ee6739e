import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { shape } from './logic.js';

const event = JSON.parse(readFileSync(new URL('./fixtures/incident_triggered.json', import.meta.url)));
const context = { url: 'https://receiver.example/hook', eventType: 'incident.triggered' };

test('the sample incident becomes a chat message', () => {
  const request = shape(event, context, null);
  assert.equal(request.method, 'POST');
  assert.equal(request.url, 'https://receiver.example/hook');
  assert.deepEqual(JSON.parse(request.body), {
    text: '[TRIGGERED] Sample incident for testing webhooks (Team 2 Service 1)',
  });
});

test('a configured prefix replaces the status', () => {
  const request = shape(event, context, { prefix: 'ALERT' });
  assert.match(JSON.parse(request.body).text, /^ALERT Sample incident/);
});
