// Outgoing QoS 2 state of log-backed deliveries (src/mqtt/persistence/outgoing-qos2.ts): the o2:
// value codec, what start-up restores or drops, and the session rules that keep a completed
// delivery known as completed while a replay may still read it. The crash behaviour through a
// real broker process is in test/fault/edge-qos2-crash.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CommitLog } from '../../src/commitlog/index.js'
import { MemoryMetaStore } from '../../src/meta/memory.js'
import { silentLogger } from '../../src/log/index.js'
import { createPersistence } from '../../src/mqtt/persistence.js'
import { Session } from '../../src/mqtt/persistence/session.js'
import { decodeOutgoingQos2, encodeOutgoingQos2, outgoingQos2Key, PREFIX, QOS2_COMPLETED, QOS2_PUBLISHED, QOS2_RELEASED } from '../../src/mqtt/persistence/keys.js'
import { restoreOutgoingQos2 } from '../../src/mqtt/persistence/outgoing-qos2.js'
import { rememberLogPosition } from '../../src/mqtt/record-offsets.js'
import { tempDir } from '../helpers/net.js'

const pos = (offset: number): { offset: number, nextOffset: number } => ({ offset, nextOffset: offset + 10 })

test('o2: values round-trip; a wrong size, an unknown step or packet id 0 is rejected', () => {
  for (const step of [QOS2_PUBLISHED, QOS2_RELEASED, QOS2_COMPLETED] as const) {
    assert.deepEqual(decodeOutgoingQos2(encodeOutgoingQos2(step, 65535, 123456789012)), { step, messageId: 65535, nextOffset: 123456789012 })
  }
  const good = encodeOutgoingQos2(QOS2_RELEASED, 7, 10)
  assert.equal(decodeOutgoingQos2(good.subarray(0, 10)), undefined)
  const badStep = Buffer.from(good)
  badStep[0] = 3
  assert.equal(decodeOutgoingQos2(badStep), undefined)
  assert.equal(decodeOutgoingQos2(encodeOutgoingQos2(QOS2_PUBLISHED, 0, 10)), undefined, '[MQTT-2.3.1-1] packet id 0')
  // One client's keys sort in log order (fixed-width hex).
  assert.ok(outgoingQos2Key('c', 0x9) < outgoingQos2Key('c', 0x10))
})

test('start-up restores deliveries at or above the cursor and drops the rest', async () => {
  const meta = new MemoryMetaStore()
  const session = new Session('c', 100)
  const sessions = new Map([['c', session]])
  await meta.batch([
    { type: 'put', key: outgoingQos2Key('c', 50), value: encodeOutgoingQos2(QOS2_RELEASED, 1, 60) }, // below the cursor: completed
    { type: 'put', key: outgoingQos2Key('c', 100), value: encodeOutgoingQos2(QOS2_PUBLISHED, 2, 110) },
    { type: 'put', key: outgoingQos2Key('c', 120), value: encodeOutgoingQos2(QOS2_COMPLETED, 3, 130) },
    { type: 'put', key: outgoingQos2Key('c', 140), value: encodeOutgoingQos2(QOS2_RELEASED, 4, 150) },
    { type: 'put', key: outgoingQos2Key('c', 190), value: encodeOutgoingQos2(QOS2_PUBLISHED, 5, 210) }, // past the log end (200)
    { type: 'put', key: outgoingQos2Key('gone', 100), value: encodeOutgoingQos2(QOS2_PUBLISHED, 6, 110) }, // no such session
    { type: 'put', key: outgoingQos2Key('c', 160), value: Buffer.from('junk') }
  ])
  const { restored, stale } = await restoreOutgoingQos2(meta, sessions, 200, silentLogger())
  assert.equal(restored, 3)
  assert.deepEqual(stale.map((op) => op.key).sort(), [outgoingQos2Key('c', 50), outgoingQos2Key('c', 160), outgoingQos2Key('c', 190), outgoingQos2Key('gone', 100)].sort())
  assert.ok(stale.every((op) => op.type === 'del'))

  const published = session.entries.get(100)!
  assert.deepEqual([published.messageId, published.pubrel, published.acked, published.deliveredTo, published.stored], [2, false, false, null, true])
  const released = session.entries.get(140)!
  assert.deepEqual([released.messageId, released.pubrel, released.acked], [4, true, false])
  assert.equal(session.entries.get(120)?.acked, true, 'completed: tracked as acked')
  assert.deepEqual([...session.byMessageId.keys()].sort(), [2, 4], 'a PUBCOMP can find the ones in flight by id')
  assert.deepEqual(session.doneKeys, [120])
})

test('a completed delivery stays known while a replay may read it; its key goes once the persisted cursor passes it', () => {
  const s = new Session('c', 100)
  s.restore(pos(100), 2, false, false)
  s.restore(pos(120), 3, false, true)
  // As after start-up: everything from the cursor on is pending until a replay looked at it.
  s.untrackedMin = 100
  s.high = 200
  s.recompute()
  assert.equal(s.cursor, 100)
  // The replay starts at the cursor (outgoingStream) and reads past both entries.
  s.untrackedMin = Infinity
  s.replayFloor = 100
  s.ack(s.entries.get(100)!) // the subscriber completes the first one while the replay runs
  assert.equal(s.entries.get(120)?.acked, true, 'not forgotten while the replay has not passed it')
  s.replayFloor = 200
  s.recompute()
  assert.equal(s.entries.has(120), false, 'forgotten once the replay passed it')
  s.replayFloor = Infinity
  s.recompute()
  assert.equal(s.cursor, 200)
  assert.equal(s.takePassedDoneKeys(120), null, 'the persisted cursor has not passed 120 yet')
  assert.deepEqual(s.takePassedDoneKeys(200), [120])
  assert.deepEqual(s.doneKeys, [])
})

test('a restored delivery whose record retention deleted stops holding the cursor', () => {
  const s = new Session('c', 100)
  s.restore(pos(100), 2, true, false)
  s.restore(pos(150), 3, false, false)
  s.untrackedMin = Infinity
  s.high = 200
  s.recompute()
  assert.equal(s.cursor, 100)
  s.forgetBelow(140) // a replay found 100..140 truncated
  s.recompute()
  assert.equal(s.cursor, 150, 'held by the next delivery in flight only')
  assert.equal(s.byMessageId.has(2), false)
  assert.deepEqual(s.doneKeys, [100], 'its key goes with the cursor write that passes it')
})

// The adapter in process, over a real commitlog and the memory MetaStore: what is in the MetaStore
// at the moment each outgoingUpdate promise resolves (aedes writes the packet then).
test('outgoingUpdate: a QoS 2 PUBLISH/PUBREL resolves once its o2: key is committed, in call order; QoS 1 writes nothing and does not wait; keys go with the cursor or a clean session', async () => {
  const dir = await tempDir('outgoing-qos2')
  const log = await CommitLog.open({ dir: dir.path, segmentBytes: 1024 * 1024, flushPolicy: 'always', flushIntervalMs: 5, maxRecordBytes: 65536, retentionBytes: 0, retentionMs: 0, log: silentLogger() })
  const meta = new MemoryMetaStore()
  const persistence = createPersistence({ log, meta, logger: silentLogger(), cursorFlushMs: 5 })
  const client = { id: 'sub' }
  const o2 = async (): Promise<Array<[number, number, number]>> => {
    const out: Array<[number, number, number]> = []
    for await (const [key, value] of meta.scan(PREFIX.outgoingQos2)) {
      const state = decodeOutgoingQos2(value)!
      out.push([parseInt(key.slice(key.indexOf('\0') + 1), 16), state.step, state.messageId])
    }
    return out
  }
  const settle = async (): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, 60)) } // several cursor flushes
  try {
    await persistence.setup({ id: 'broker-1', clients: { sub: {} } })
    await persistence.addSubscriptions(client, [{ topic: 't/#', qos: 2 }])
    const packets = [2, 1, 2].map((qos, i) => {
      const payload = Buffer.from(`m${i}`)
      const at = log.append({ topic: 't/x', payload, qos: qos as 1 | 2, retain: false, clientId: 'pub' })
      rememberLogPosition(payload, at)
      return { offset: at.offset, packet: { cmd: 'publish', topic: 't/x', payload, qos, retain: false, messageId: 10 + i } }
    })
    await log.flush()
    for (const { packet } of packets) await persistence.outgoingEnqueueCombi([{ clientId: client.id, qos: 2 }], packet)

    const resolved: Array<[number, Array<[number, number, number]>]> = []
    await Promise.all(packets.map(async ({ packet }) => {
      await persistence.outgoingUpdate(client, packet)
      resolved.push([packet.messageId, await o2()])
    }))
    const [a, b, c] = packets
    assert.deepEqual(resolved.map(([id]) => id), [11, 10, 12], 'QoS 1 first (no I/O), then the QoS 2 ones in call order')
    assert.deepEqual(resolved[0][1], [], 'QoS 1 wrote nothing')
    assert.deepEqual(resolved[1][1].find(([offset]) => offset === a.offset), [a.offset, QOS2_PUBLISHED, 10], 'committed before aedes writes the PUBLISH')
    assert.deepEqual(await o2(), [[a.offset, QOS2_PUBLISHED, 10], [c.offset, QOS2_PUBLISHED, 12]])

    await persistence.outgoingUpdate(client, { cmd: 'pubrel', messageId: 10 })
    assert.deepEqual((await o2())[0], [a.offset, QOS2_RELEASED, 10], 'committed before aedes writes the PUBREL')

    // c completes first: its key stays (as completed) while a holds the cursor below it.
    await persistence.outgoingClearMessageId(client, { cmd: 'pubcomp', messageId: 12 })
    await persistence.outgoingClearMessageId(client, { cmd: 'puback', messageId: 11 })
    await settle()
    assert.deepEqual(await o2(), [[a.offset, QOS2_RELEASED, 10], [c.offset, QOS2_COMPLETED, 12]])
    assert.ok(persistence.sessionInfo('sub')!.persistedCursor <= a.offset)
    // a completes: the cursor passes both, and their keys go with that cursor write.
    await persistence.outgoingClearMessageId(client, { cmd: 'pubcomp', messageId: 10 })
    await settle()
    assert.equal(persistence.sessionInfo('sub')!.persistedCursor, log.endOffset)
    assert.deepEqual(await o2(), [])

    // One more in flight, then a clean session: its key is deleted with the session.
    const payload = Buffer.from('m3')
    const at = log.append({ topic: 't/x', payload, qos: 2, retain: false, clientId: 'pub' })
    rememberLogPosition(payload, at)
    await log.flush()
    const packet = { cmd: 'publish', topic: 't/x', payload, qos: 2, retain: false, messageId: 13 }
    await persistence.outgoingEnqueueCombi([{ clientId: client.id, qos: 2 }], packet)
    await persistence.outgoingUpdate(client, packet)
    assert.deepEqual(await o2(), [[at.offset, QOS2_PUBLISHED, 13]])
    await persistence.cleanSubscriptions(client)
    assert.deepEqual(await o2(), [])
  } finally {
    await persistence.destroy()
    await log.close()
    await dir.remove()
  }
})
