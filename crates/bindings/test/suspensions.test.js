'use strict';

// Suspensions beyond their instance through the binding: hibernated in memory, kept on disk
// across runtimes, sealed with the configured keys, and cancelled.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { NexusRuntime } = require('..');

const context = {
  capabilities: ['ext:kv'],
  extensionRegistry: { kv: ['get'] },
};
const handler = "const v = await $ext.kv.get('a'); return v * 2;";

test('a hibernated suspension resumes like a live one and is used once', async () => {
  const runtime = new NexusRuntime({ hibernateAfterMs: 0 });
  try {
    const suspended = await runtime.executeHandler(handler, context);
    assert.equal(suspended.status, 'suspended');
    for (let i = 0; i < 100 && (await runtime.getStats()).hibernated === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.equal((await runtime.getStats()).hibernated, 1);
    const done = await runtime.resumeHandler(suspended.suspension.id, 1, { value: 21 });
    assert.equal(done.returnValue, 42);
    await assert.rejects(runtime.resumeHandler(suspended.suspension.id, 1, { value: 21 }), {
      code: 'SUSPENSION_NOT_FOUND',
    });
    const stats = await runtime.getStats();
    assert.ok(stats.hibernations >= 1 && stats.restores >= 1, JSON.stringify(stats));
  } finally {
    await runtime.shutdown();
  }
});

test('a suspension in a directory store outlives its runtime; keys as Buffers or hex; cancel', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexus-node-store-'));
  const key = Buffer.alloc(32, 5);
  try {
    assert.throws(() => new NexusRuntime({ suspensionStore: { dir } }), /suspension keys/);
    const first = new NexusRuntime({ suspensionStore: { dir }, suspensionKeys: [key] });
    const suspended = await first.executeHandler(handler, context);
    const other = await first.executeHandler(handler, context);
    await first.shutdown();

    const second = new NexusRuntime({ suspensionStore: { dir }, suspensionKeys: [key.toString('hex')] });
    const done = await second.resumeHandler(suspended.suspension.id, 1, { value: 4 });
    assert.equal(done.returnValue, 8);
    assert.equal(await second.cancelSuspension(other.suspension.id), true);
    assert.equal(await second.cancelSuspension(other.suspension.id), false);
    await assert.rejects(second.resumeHandler(other.suspension.id, 1, { value: 4 }), {
      code: 'SUSPENSION_NOT_FOUND',
    });
    await second.shutdown();
    assert.throws(() => new NexusRuntime({ suspensionKeys: ['abc'] }), /64 hexadecimal characters/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
