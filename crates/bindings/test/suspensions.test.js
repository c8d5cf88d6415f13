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

/**
 * A Redis for this test: NEXUS_TEST_REDIS_URL, or a redis-server of its own on a free loopback
 * port, without persistence; the test fails (it is not skipped) when there is none.
 */
async function startRedis() {
  if (process.env.NEXUS_TEST_REDIS_URL) return { url: process.env.NEXUS_TEST_REDIS_URL, stop() {} };
  const net = require('node:net');
  const { spawn } = require('node:child_process');
  const port = await new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexus-node-redis-'));
  const server = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  );
  const failed = new Promise((_, reject) =>
    server.on('error', (e) =>
      reject(new Error(`the Redis tests need redis-server (${e.message}): apt-get install -y redis-server`)),
    ),
  );
  const answers = () =>
    new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.end('PING\r\n'));
      socket.on('data', (data) => resolve(data.toString().startsWith('+PONG')));
      socket.on('error', () => resolve(false));
    });
  for (let i = 0; ; i++) {
    if (await Promise.race([answers(), failed])) break;
    if (i > 500) throw new Error(`redis-server did not answer on port ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return {
    url: `redis://127.0.0.1:${port}/0`,
    stop() {
      server.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('two runtimes sharing one Redis resume each other\'s suspensions, exactly once', async () => {
  const redis = await startRedis();
  const key = Buffer.alloc(32, 9);
  try {
    assert.throws(() => new NexusRuntime({ suspensionStore: { redis: redis.url } }), /suspension keys/);
    assert.throws(
      () => new NexusRuntime({ suspensionStore: { dir: '/tmp', redis: redis.url }, suspensionKeys: [key] }),
      /either \{ dir \} or \{ redis/,
    );
    const config = { suspensionStore: { redis: redis.url, prefix: 'node-test:' }, suspensionKeys: [key] };
    const a = new NexusRuntime(config);
    const b = new NexusRuntime(config);
    const suspended = await a.executeHandler(handler, context);
    const [first, second] = await Promise.allSettled([
      a.resumeHandler(suspended.suspension.id, 1, { value: 5 }),
      b.resumeHandler(suspended.suspension.id, 1, { value: 5 }),
    ]);
    const won = [first, second].filter((r) => r.status === 'fulfilled');
    const lost = [first, second].filter((r) => r.status === 'rejected');
    assert.equal(won.length, 1, JSON.stringify([first, second]));
    assert.equal(won[0].value.returnValue, 10);
    assert.equal(lost[0].reason.code, 'SUSPENSION_NOT_FOUND');
    await a.shutdown();
    await b.shutdown();
  } finally {
    redis.stop();
  }
});

test('an unreachable Redis fails what needs it with STORE_UNAVAILABLE, and nothing else', async () => {
  const redis = await startRedis();
  redis.stop();
  const runtime = new NexusRuntime({
    suspensionStore: { redis: redis.url, timeoutMs: 200 },
    suspensionKeys: [Buffer.alloc(32, 9)],
  });
  try {
    await assert.rejects(runtime.executeHandler(handler, context), { code: 'STORE_UNAVAILABLE' });
    const plain = await runtime.executeHandler('return 6 * 7;', {});
    assert.equal(plain.returnValue, 42);
  } finally {
    await runtime.shutdown();
  }
});
