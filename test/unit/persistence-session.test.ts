// Unit tests of the persistence adapter's pure parts: the topic matcher used by replays (a
// property test against qlobber, which aedes itself uses) and the session cursor arithmetic.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { QlobberTrue } from 'qlobber'
import { topicMatches } from '../../src/mqtt/persistence/topic-match.js'
import { Session } from '../../src/mqtt/persistence/session.js'
import type { LogRecord } from '../../src/commitlog/types.js'

test('topicMatches agrees with qlobber (plus the $-topic rule [MQTT-4.7.2-1])', () => {
  const level = fc.constantFrom('a', 'b', '', 'ab', '$x', 'a$')
  const topic = fc.array(level, { minLength: 1, maxLength: 5 }).map((l) => l.join('/'))
  const filter = fc.tuple(fc.array(fc.constantFrom('a', 'b', '', 'ab', '+', '$x'), { minLength: 1, maxLength: 5 }), fc.boolean())
    .map(([l, hash]) => (hash ? [...l, '#'] : l).join('/'))
  fc.assert(fc.property(filter, topic, (f, t) => {
    const q = new QlobberTrue({ separator: '/', wildcard_one: '+', wildcard_some: '#', match_empty_levels: true })
    q.add(f)
    const wildcardFirst = f.startsWith('+') || f.startsWith('#')
    const expected = t.startsWith('$') && wildcardFirst ? false : q.test(t)
    assert.equal(topicMatches(f, t), expected, `${f} vs ${t}`)
  }), { numRuns: 5000 })
  assert.equal(topicMatches('#', '#'), true)
  assert.equal(topicMatches('a/#', 'a'), true) // [MQTT-4.7.1-2]
  assert.equal(topicMatches('#', '$SYS/x'), false)
  assert.equal(topicMatches('$SYS/#', '$SYS/x'), true)
})

const pos = (offset: number): { offset: number, nextOffset: number } => ({ offset, nextOffset: offset + 10 })

test('offline enqueues move nothing past the first pending record', () => {
  const s = new Session('c', 100)
  assert.equal(s.cursor, 100)
  s.enqueue(pos(150), 1, false)
  s.enqueue(pos(170), 1, false)
  assert.equal(s.cursor, 150, 'records between 100 and 150 were not for this session')
  assert.equal(s.high, 180)
})

test('live entries acked out of order: the cursor moves over the acked head only', () => {
  const s = new Session('c', 0)
  for (const o of [0, 10, 20, 30]) s.enqueue(pos(o), 1, true)
  const e = [0, 10, 20, 30].map((o) => s.entries.get(o))
  for (const [i, entry] of e.entries()) if (entry !== undefined) s.assign(entry, i + 1, {}, null)
  assert.equal(s.cursor, 0)
  s.ack(e[1]!)
  s.ack(e[2]!)
  assert.equal(s.cursor, 0, 'the first one is still unacked')
  s.ack(e[0]!)
  assert.equal(s.cursor, 30)
  assert.equal(s.entries.has(10), false, 'entries the cursor passed are dropped')
  s.ack(e[3]!)
  assert.equal(s.cursor, 40)
  assert.equal(s.trackedCount, 0)
  assert.equal(s.byMessageId.size, 0)
})

test('a record appended earlier but routed later moves the cursor back', () => {
  const s = new Session('c', 0)
  s.enqueue(pos(50), 1, true)
  s.ack(s.entries.get(50)!)
  assert.equal(s.cursor, 60)
  assert.equal(s.enqueue(pos(20), 1, false), true)
  assert.equal(s.cursor, 20, 'offline: replay from the late record')
  const t = new Session('d', 0)
  t.enqueue(pos(50), 1, true)
  t.ack(t.entries.get(50)!)
  t.enqueue(pos(20), 1, true)
  assert.equal(t.cursor, 20, 'live: the unacked late record holds the cursor')
  t.ack(t.entries.get(20)!)
  assert.equal(t.cursor, 60)
})

test('a running replay holds the cursor at its read position', () => {
  const s = new Session('c', 0)
  s.enqueue(pos(0), 1, false)
  s.enqueue(pos(100), 1, false)
  s.untrackedMin = Infinity
  s.replayFloor = 0
  const entry = s.track(pos(0), 1)
  s.replayFloor = 10
  s.recompute()
  s.ack(entry)
  assert.equal(s.cursor, 10, 'the replay has not looked at 10..110 yet')
  s.replayFloor = Infinity
  s.recompute()
  assert.equal(s.cursor, 110)
})

test('matchQos: QoS 0 records and records older than the subscription are not queued; QoS is the minimum', () => {
  const s = new Session('c', 0)
  s.subs.set('a/+', { qos: 1, rh: 0, rap: false, nl: false, since: 0 })
  s.subs.set('a/b', { qos: 2, rh: 0, rap: false, nl: false, since: 500 })
  const rec = (offset: number, topic: string, qos: 0 | 1 | 2): LogRecord => ({ offset, nextOffset: offset + 10, timestampMs: 0, topic, payload: Buffer.alloc(0), qos, retain: false, clientId: 'p' })
  assert.equal(s.matchQos(rec(100, 'a/b', 2)), 1, 'the QoS 2 subscription came later')
  assert.equal(s.matchQos(rec(600, 'a/b', 2)), 2)
  assert.equal(s.matchQos(rec(700, 'a/b', 1)), 1)
  assert.equal(s.matchQos(rec(800, 'a/b', 0)), 0)
  assert.equal(s.matchQos(rec(900, 'x/b', 2)), 0)
})
