// Outgoing QoS 2 state of log-backed deliveries (src/mqtt/persistence/outgoing-qos2.ts): the o2:
// value codec, what start-up restores or drops, and the session rules that keep a completed
// delivery known as completed while a replay may still read it. The crash behaviour through a
// real broker process is in test/fault/edge-qos2-crash.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryMetaStore } from '../../src/meta/memory.js'
import { silentLogger } from '../../src/log/index.js'
import { Session } from '../../src/mqtt/persistence/session.js'
import { decodeOutgoingQos2, encodeOutgoingQos2, outgoingQos2Key, QOS2_COMPLETED, QOS2_PUBLISHED, QOS2_RELEASED } from '../../src/mqtt/persistence/keys.js'
import { restoreOutgoingQos2 } from '../../src/mqtt/persistence/outgoing-qos2.js'

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
