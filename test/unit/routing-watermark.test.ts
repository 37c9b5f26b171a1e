// Session cursors must never be persisted past a record that aedes has acked (PUBACK after the
// durable append) but not yet routed: a crash in that gap would skip the record for an offline
// persistent session. The watermark closes the gap; the control run below shows the gap exists.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CommitLog } from '../../src/commitlog/index.js'
import { silentLogger } from '../../src/log/index.js'
import { MemoryMetaStore } from '../../src/meta/memory.js'
import { createPersistence } from '../../src/mqtt/persistence.js'
import { rememberLogPosition } from '../../src/mqtt/record-offsets.js'
import { ABANDON_AFTER_MS, RoutingWatermark } from '../../src/mqtt/routing-watermark.js'
import { tempDir } from '../helpers/net.js'

const at = (offset: number): { offset: number, nextOffset: number } => ({ offset, nextOffset: offset + 10 })

test('the watermark is the oldest appended record not yet routed, whatever the routing order', () => {
  const w = new RoutingWatermark()
  assert.equal(w.lowest, Infinity)
  w.appended(at(0)); w.appended(at(10)); w.appended(at(20))
  assert.equal(w.lowest, 0)
  w.routed(at(10)) // a later record routed first (two publishers racing)
  assert.equal(w.lowest, 0)
  w.routed(at(0))
  assert.equal(w.lowest, 20)
  w.routed(at(20))
  assert.equal(w.lowest, Infinity)
  assert.equal(w.pending, 0)
})

test('a record whose publish was abandoned stops holding the watermark after ABANDON_AFTER_MS', () => {
  let now = 1_000
  const w = new RoutingWatermark(() => now)
  w.appended(at(0))
  now += 5
  w.appended(at(10))
  w.routed(at(10))
  assert.equal(w.lowest, 0)
  now += ABANDON_AFTER_MS
  assert.equal(w.lowest, Infinity)
})

test('only QoS > 0 publishes are tracked by the broker hooks', () => {
  const w = new RoutingWatermark()
  const payload = Buffer.from('x')
  rememberLogPosition(payload, at(30))
  w.onAppended({ qos: 0 }, at(30))
  assert.equal(w.lowest, Infinity)
  w.onAppended({ qos: 1 }, at(30))
  assert.equal(w.lowest, 30)
  w.onPublished({ qos: 1, payload })
  assert.equal(w.lowest, Infinity)
})

async function persistedCursorAfterUnroutedAppend (withWatermark: boolean): Promise<{ persisted: number, recordOffset: number }> {
  const dir = await tempDir('watermark')
  const log = await CommitLog.open({ dir: dir.path, segmentBytes: 1024 * 1024, flushPolicy: 'none', flushIntervalMs: 5, maxRecordBytes: 65536, retentionBytes: 0, retentionMs: 0, log: silentLogger() })
  const watermark = new RoutingWatermark()
  const persistence = createPersistence({ log, meta: new MemoryMetaStore(), logger: silentLogger(), cursorFlushMs: 5, watermark: withWatermark ? watermark : undefined })
  try {
    await persistence.setup({ id: 'broker-1', clients: {} })
    // A persistent session, offline (not among the broker's clients), subscribed at QoS 1.
    await persistence.addSubscriptions({ id: 'offline-sub' }, [{ topic: 'devices/#', qos: 1 }])
    // A publisher's record is appended and durable (acked), but aedes has not routed it yet.
    const result = log.append({ topic: 'devices/1/telemetry', payload: Buffer.from('reading'), qos: 1, retain: false, clientId: 'pub' })
    watermark.appended(result)
    await new Promise((resolve) => setTimeout(resolve, 60)) // several cursor flushes (every 5 ms)
    const persisted = persistence.sessionInfo('offline-sub')!.persistedCursor
    // Then aedes routes it, and the session knows it owes the record.
    const payload = Buffer.from('reading')
    rememberLogPosition(payload, result)
    await persistence.outgoingEnqueueCombi([{ clientId: 'offline-sub', qos: 1 }], { cmd: 'publish', topic: 'devices/1/telemetry', payload, qos: 1, retain: false })
    watermark.routed(result)
    return { persisted, recordOffset: result.offset }
  } finally {
    await persistence.destroy()
    await log.close()
    await dir.remove()
  }
}

test('an idle offline session does not persist its cursor past an acked but unrouted record', async () => {
  const guarded = await persistedCursorAfterUnroutedAppend(true)
  assert.ok(guarded.persisted <= guarded.recordOffset, `persisted cursor ${guarded.persisted} is past the unrouted record at ${guarded.recordOffset}`)
  // Control: without the watermark the idle session follows the log end past the record.
  const unguarded = await persistedCursorAfterUnroutedAppend(false)
  assert.ok(unguarded.persisted > unguarded.recordOffset, 'the race this guards against did not show without the watermark')
})
