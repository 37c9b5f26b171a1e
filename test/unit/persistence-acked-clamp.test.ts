// The broker routes a QoS 1 message before its record is durable (src/mqtt/broker.ts), so a
// connected persistent subscriber can acknowledge records that a crash then cuts off the log; the
// next records reuse those offsets. Session cursors must therefore never be persisted past the
// log's acked offset, and a cursor (or a subscription start) found past the end of the log at
// start-up is clamped to it, rewritten and logged. Control runs show each guard matters.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import pino from 'pino'
import { CommitLog } from '../../src/commitlog/index.js'
import { silentLogger } from '../../src/log/index.js'
import { MemoryMetaStore } from '../../src/meta/memory.js'
import { createPersistence, type SessionLog } from '../../src/mqtt/persistence.js'
import { cursorKey, decodeOffset, encodeOffset, subKey } from '../../src/mqtt/persistence/keys.js'
import { rememberLogPosition } from '../../src/mqtt/record-offsets.js'
import { tempDir } from '../helpers/net.js'

const TOPIC = 'devices/1/telemetry'

async function openLog (dir: string): Promise<CommitLog> {
  return await CommitLog.open({ dir, segmentBytes: 1024 * 1024, flushPolicy: 'interval', flushIntervalMs: 5, maxRecordBytes: 65536, retentionBytes: 0, retentionMs: 0, log: silentLogger() })
}

// The real log, with an acked offset the test sets (`null`: the real one).
function withAcked (log: CommitLog): { port: SessionLog, setAcked: (n: number | null) => void } {
  let acked: number | null = null
  const port: SessionLog = {
    get endOffset () { return log.endOffset },
    get ackedOffset () { return acked ?? log.ackedOffset },
    read: (offset, limits) => log.read(offset, limits),
    setReader: (name, offset) => { log.setReader(name, offset) },
    removeReader: (name) => { log.removeReader(name) }
  }
  return { port, setAcked: (n) => { acked = n } }
}

const settle = async (): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, 60)) } // several cursor flushes (every 5 ms)

test('a connected session that acks records not yet acked by the log persists its cursor only up to the acked offset', async () => {
  const dir = await tempDir('acked-clamp')
  const log = await openLog(dir.path)
  const { port, setAcked } = withAcked(log)
  const meta = new MemoryMetaStore()
  const persistence = createPersistence({ log: port, meta, logger: silentLogger(), cursorFlushMs: 5 })
  const client = { id: 'live-sub' }
  try {
    await persistence.setup({ id: 'broker-1', clients: { 'live-sub': {} } })
    await persistence.addSubscriptions(client, [{ topic: 'devices/#', qos: 1 }])
    await log.flush()
    const ackedBefore = log.endOffset
    setAcked(ackedBefore) // what follows is appended but not acked by the log (not durable yet)
    let messageId = 1
    let last = 0
    for (let i = 0; i < 5; i++) {
      const payload = Buffer.from(`reading ${i}`)
      const result = log.append({ topic: TOPIC, payload, qos: 1, retain: false, clientId: 'pub' })
      rememberLogPosition(payload, result)
      const packet = { cmd: 'publish', topic: TOPIC, payload, qos: 1, retain: false, messageId }
      // Routed at once (before durable): enqueued, sent, and acknowledged by the subscriber.
      await persistence.outgoingEnqueueCombi([{ clientId: client.id, qos: 1 }], packet)
      await persistence.outgoingUpdate(client, packet)
      await persistence.outgoingClearMessageId(client, { messageId })
      messageId++
      last = result.nextOffset
    }
    await settle()
    const info = persistence.sessionInfo(client.id)!
    assert.equal(info.cursor, last, 'the in-memory cursor moves over every acked record')
    assert.ok(info.persistedCursor <= ackedBefore, `persisted cursor ${info.persistedCursor} is past the acked offset ${ackedBefore}`)
    const stored = await meta.get(cursorKey(client.id))
    assert.ok(stored !== undefined && decodeOffset(stored) <= ackedBefore)
    // Once the log acks them, the held-back cursor is written (no further ack needed).
    setAcked(null)
    await log.flush()
    await settle()
    assert.equal(persistence.sessionInfo(client.id)!.persistedCursor, last)
    assert.equal(decodeOffset((await meta.get(cursorKey(client.id)))!), last)
  } finally {
    await persistence.destroy()
    await log.close()
    await dir.remove()
  }
})

test('an idle session follows the log only up to the acked offset', async () => {
  const dir = await tempDir('acked-idle')
  const log = await openLog(dir.path)
  const { port, setAcked } = withAcked(log)
  const persistence = createPersistence({ log: port, meta: new MemoryMetaStore(), logger: silentLogger(), cursorFlushMs: 5 })
  try {
    await persistence.setup({ id: 'broker-1', clients: {} })
    await persistence.addSubscriptions({ id: 'idle-sub' }, [{ topic: 'other/#', qos: 1 }])
    await log.flush()
    const acked = log.endOffset
    setAcked(acked)
    for (let i = 0; i < 5; i++) log.append({ topic: TOPIC, payload: Buffer.from('x'), qos: 1, retain: false, clientId: 'pub' })
    await settle()
    assert.equal(persistence.sessionInfo('idle-sub')!.persistedCursor, acked)
    setAcked(null)
    await log.flush()
    await settle()
    assert.equal(persistence.sessionInfo('idle-sub')!.persistedCursor, log.endOffset, 'control: the idle session does follow the acked end')
  } finally {
    await persistence.destroy()
    await log.close()
    await dir.remove()
  }
})

test('at start-up a cursor and a subscription start past the end of the log are clamped to it, rewritten and logged', async () => {
  const dir = await tempDir('acked-recover')
  const log = await openLog(dir.path)
  const meta = new MemoryMetaStore()
  const lines: string[] = []
  const logger = pino({ level: 'warn' }, { write: (s: string) => { lines.push(s) } })
  try {
    for (let i = 0; i < 3; i++) log.append({ topic: TOPIC, payload: Buffer.from('kept'), qos: 1, retain: false, clientId: 'pub' })
    await log.flush()
    const end = log.endOffset
    // As left by a crash that cut the log's tail: the cursor and the subscription start point
    // into the lost tail.
    await meta.batch([
      { type: 'put', key: subKey('late-sub', 'devices/#'), value: Buffer.from(JSON.stringify({ qos: 1, since: end + 500 })) },
      { type: 'put', key: cursorKey('late-sub'), value: encodeOffset(end + 700) }
    ])
    const persistence = createPersistence({ log, meta, logger, cursorFlushMs: 5 })
    await persistence.setup({ id: 'broker-1', clients: {} })
    try {
      assert.equal(persistence.sessionInfo('late-sub')!.cursor, end)
      assert.equal(decodeOffset((await meta.get(cursorKey('late-sub')))!), end, 'the clamped cursor is rewritten')
      const sub = JSON.parse((await meta.get(subKey('late-sub', 'devices/#')))!.toString('utf8')) as { since: number }
      assert.equal(sub.since, end, 'the clamped subscription start is rewritten')
      assert.ok(lines.some((l) => l.includes('session cursor is past the end of the recovered log')), 'the cursor clamp is logged')
      assert.ok(lines.some((l) => l.includes('subscription start is past the end of the recovered log')), 'the subscription clamp is logged')
      // A record published after the restart reuses the lost offsets; it reaches the session.
      const payload = Buffer.from('after restart')
      const result = log.append({ topic: TOPIC, payload, qos: 1, retain: false, clientId: 'pub' })
      assert.ok(result.offset < end + 500, 'the new record reuses an offset of the lost tail')
      rememberLogPosition(payload, result)
      await persistence.outgoingEnqueueCombi([{ clientId: 'late-sub', qos: 1 }], { cmd: 'publish', topic: TOPIC, payload, qos: 1, retain: false })
      const got: string[] = []
      for await (const p of persistence.outgoingStream({ id: 'late-sub' })) got.push(String((p as { payload: Buffer }).payload))
      assert.deepEqual(got, ['after restart'])
    } finally {
      await persistence.destroy()
    }
  } finally {
    await log.close()
    await dir.remove()
  }
})

test('a graceful shutdown makes the log durable first, so cursors are persisted all the way', async () => {
  const dir = await tempDir('acked-destroy')
  const log = await openLog(dir.path)
  const meta = new MemoryMetaStore()
  const persistence = createPersistence({ log, meta, logger: silentLogger(), cursorFlushMs: 5 })
  const client = { id: 'live-sub' }
  try {
    await persistence.setup({ id: 'broker-1', clients: { 'live-sub': {} } })
    await persistence.addSubscriptions(client, [{ topic: 'devices/#', qos: 1 }])
    const payload = Buffer.from('last words')
    const result = log.append({ topic: TOPIC, payload, qos: 1, retain: false, clientId: 'pub' })
    rememberLogPosition(payload, result)
    const packet = { cmd: 'publish', topic: TOPIC, payload, qos: 1, retain: false, messageId: 1 }
    await persistence.outgoingEnqueueCombi([{ clientId: client.id, qos: 1 }], packet)
    await persistence.outgoingUpdate(client, packet)
    await persistence.outgoingClearMessageId(client, { messageId: 1 })
    // No macrotask has run since the append: its fsync cannot have completed.
    assert.ok(log.ackedOffset < result.nextOffset, 'precondition: the record is not durable yet')
    await persistence.destroy()
    assert.equal(decodeOffset((await meta.get(cursorKey(client.id)))!), result.nextOffset)
  } finally {
    await persistence.destroy()
    await log.close()
    await dir.remove()
  }
})
