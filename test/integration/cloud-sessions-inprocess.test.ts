// Persistent sessions on one cloud node with the embedded store (in-process node, real MQTT
// sockets): records appended to the store reach a clean=false subscriber exactly once (its
// follower; the dispatcher's copies are not delivered to it), a second connection with the same
// client id takes the session over where the first stopped, what arrives while it is offline
// comes after the reconnect, and a clean=true CONNECT ends the session [MQTT-3.1.2-6].
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import { CommitLog } from '../../src/commitlog/index.js'
import { silentLogger } from '../../src/log/index.js'
import { LevelMetaStore } from '../../src/meta/level.js'
import { createPersistence } from '../../src/mqtt/persistence.js'
import { tempDir, waitFor } from '../helpers/net.js'
import { startTestCloud } from './bridge-helpers.js'
import type { CloudNode } from '../../cloud/node.js'
import type { Lease } from '../../cloud/store/types.js'

async function append (node: CloudNode, lease: Lease, from: number, to: number): Promise<void> {
  const records = []
  for (let i = from; i < to; i++) records.push({ offset: i, nextOffset: i + 1, timestampMs: Date.now(), qos: 1 as const, retain: false, topic: 'devices/1/t', payload: Buffer.from(`m${i}`) })
  const out = await node.store.appendBatch('edge-a', { fromOffset: from, toOffset: to, records }, lease)
  assert.equal(out.status, 'ok')
}

interface Sub { client: MqttClient, got: string[], sessionPresent: boolean, closed: () => boolean }

async function connect (node: CloudNode, clean: boolean): Promise<Sub> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${node.mqttPort}`, { clientId: 'app', clean, reconnectPeriod: 0, protocolVersion: 4 })
  let closed = false
  const got: string[] = []
  client.on('close', () => { closed = true })
  client.on('message', (_t, payload) => { got.push(payload.toString()) })
  const sessionPresent = await new Promise<boolean>((resolve, reject) => { client.once('connect', (c) => { resolve(c.sessionPresent) }); client.once('error', reject) })
  return { client, got, sessionPresent, closed: () => closed }
}

const range = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `m${from + i}`)

test('a persistent subscriber on the embedded store: once each, takeover by a second connection, offline then reconnect, clean=true ends it', { timeout: 30_000 }, async () => {
  const dir = await tempDir('cloud-sess')
  const node = await startTestCloud(dir.path)
  try {
    const acquired = await node.store.acquireLease('edge-a', 'test', 60_000, Date.now())
    assert.equal(acquired.status, 'ok')
    const lease = (acquired as { lease: Lease }).lease

    const first = await connect(node, false)
    assert.equal(first.sessionPresent, false)
    await first.client.subscribeAsync('up/edge-a/#', { qos: 1 })
    await append(node, lease, 0, 20)
    await waitFor('m0..m19', () => first.got.length >= 20)
    // mqtt.js emits 'message' before its PUBACK reaches the node: let the acks land, or the
    // takeover rightly resends what was not acknowledged yet (QoS 1: at least once).
    await new Promise((resolve) => setTimeout(resolve, 300))

    const second = await connect(node, false) // same client id, the first still connected
    assert.equal(second.sessionPresent, true)
    await waitFor('the first connection closed (session takeover [MQTT-3.1.4-2])', () => first.closed())
    await append(node, lease, 20, 30)
    await waitFor('m20..m29', () => second.got.length >= 10)
    await second.client.endAsync()

    await append(node, lease, 30, 40) // offline
    const third = await connect(node, false)
    assert.equal(third.sessionPresent, true)
    await waitFor('m30..m39 after the reconnect', () => third.got.length >= 10)
    await new Promise((resolve) => setTimeout(resolve, 300)) // room for a duplicate to show
    await third.client.endAsync()
    assert.deepEqual([...first.got, ...second.got, ...third.got], range(0, 40))

    const clean = await connect(node, true)
    assert.equal(clean.sessionPresent, false)
    await clean.client.endAsync()
    await append(node, lease, 40, 45)
    const after = await connect(node, false)
    assert.equal(after.sessionPresent, false, 'the clean session removed the persistent one')
    await new Promise((resolve) => setTimeout(resolve, 300))
    assert.deepEqual(after.got, [], 'nothing queued for a session that no longer exists')
    await after.client.endAsync()
  } finally {
    await node.close()
    await dir.remove()
  }
})

test('a persistent session kept by the earlier design (the node\'s own persistence) keeps its subscriptions and is moved out of it', { timeout: 30_000 }, async () => {
  const dir = await tempDir('cloud-sess-legacy')
  try {
    // What the earlier version left in <data-dir>/sessions: a subscription of client "app" in the
    // edge's persistence adapter over LevelDB.
    const log = await CommitLog.open({ dir: join(dir.path, 'sessions', 'log'), segmentBytes: 1024 * 1024, flushPolicy: 'none', flushIntervalMs: 5, maxRecordBytes: 65536, retentionBytes: 0, retentionMs: 0, log: silentLogger() })
    const meta = await LevelMetaStore.open(join(dir.path, 'sessions', 'meta'))
    const legacy = createPersistence({ log, meta, logger: silentLogger() })
    await legacy.setup({ id: 'old-broker' })
    await legacy.addSubscriptions({ id: 'app' }, [{ topic: 'up/edge-a/#', qos: 1 }])
    await legacy.destroy()
    await log.close()
    await meta.close()

    const node = await startTestCloud(dir.path)
    try {
      const acquired = await node.store.acquireLease('edge-a', 'test', 60_000, Date.now())
      const lease = (acquired as { lease: Lease }).lease
      const inner = (node.broker.aedes as unknown as { persistence: { inner: { subscriptionsByTopic: (t: string) => Promise<unknown[]> } } }).persistence.inner
      assert.equal((await inner.subscriptionsByTopic('up/edge-a/devices/1/t')).length, 1, 'the legacy subscription is loaded')
      const s = await connect(node, false)
      assert.equal(s.sessionPresent, true, 'the subscription carried over')
      assert.equal((await inner.subscriptionsByTopic('up/edge-a/devices/1/t')).length, 0, 'and left the node\'s own persistence (no copies queued there any more)')
      await append(node, lease, 0, 5)
      await waitFor('m0..m4', () => s.got.length >= 5)
      assert.deepEqual(s.got, range(0, 5))
      await s.client.endAsync()
    } finally {
      await node.close()
    }
  } finally {
    await dir.remove()
  }
})
