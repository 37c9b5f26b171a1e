// Framing round trip and frame validation (property tests).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  HEADER_BYTES, decodeRecord, encodeRecord, newProbe, probeFrame, writeSegmentEnd, SEGMENT_END_BYTES
} from '../../src/commitlog/format.js'
import { decodeCheckpoint, encodeCheckpoint } from '../../src/commitlog/checkpoint.js'
import type { QoS } from '../../src/commitlog/types.js'
import { crc32Js, crc32Range } from '../../src/commitlog/crc.js'
import { crc32 as zlibCrc32 } from 'node:zlib'

const MAX = 1 << 20

const recordArb = fc.record({
  topic: fc.string({ unit: 'grapheme', maxLength: 200 }),
  clientId: fc.string({ maxLength: 64 }),
  payload: fc.uint8Array({ maxLength: 2000 }),
  qos: fc.constantFrom<QoS>(0, 1, 2),
  retain: fc.boolean(),
  ts: fc.integer({ min: 0, max: 2 ** 47 })
})

test('framing: encode then decode returns the same record (property)', () => {
  fc.assert(fc.property(recordArb, fc.nat({ max: 64 }), (r, at) => {
    const topic = Buffer.from(r.topic, 'utf8')
    const clientId = Buffer.from(r.clientId, 'utf8')
    const payload = Buffer.from(r.payload)
    const buf = Buffer.alloc(at + HEADER_BYTES + topic.length + clientId.length + payload.length + 8)
    const len = encodeRecord(buf, at, r.ts, r.qos, r.retain, topic, clientId, payload)
    assert.equal(len, HEADER_BYTES + topic.length + clientId.length + payload.length)
    const probe = probeFrame(buf, at, at + len, MAX, newProbe())
    assert.equal(probe.check, 'record')
    assert.equal(probe.length, len)
    const d = decodeRecord(buf, at)
    assert.equal(d.topic, r.topic)
    assert.equal(d.clientId, r.clientId)
    assert.deepEqual(Buffer.from(d.payload), payload)
    assert.equal(d.qos, r.qos)
    assert.equal(d.retain, r.retain)
    assert.equal(d.timestampMs, r.ts)
  }), { numRuns: 300 })
})

test('framing: any flipped byte or truncation is detected, never decoded (property)', () => {
  fc.assert(fc.property(recordArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (r, pos, xor) => {
    const topic = Buffer.from(r.topic, 'utf8')
    const clientId = Buffer.from(r.clientId, 'utf8')
    const payload = Buffer.from(r.payload)
    const buf = Buffer.alloc(HEADER_BYTES + topic.length + clientId.length + payload.length)
    const len = encodeRecord(buf, 0, r.ts, r.qos, r.retain, topic, clientId, payload)
    const cut = pos % len
    assert.equal(probeFrame(buf, 0, cut, MAX, newProbe()).check, 'short')
    const bad = Buffer.from(buf)
    bad[pos % len] = (bad[pos % len] as number) ^ xor
    const check = probeFrame(bad, 0, len, MAX, newProbe()).check
    // A flipped length byte may make the frame look longer than the data ('short'): still not a record.
    assert.ok(check === 'bad' || check === 'short', `got ${check}`)
  }), { numRuns: 300 })
})

test('framing: end-of-segment marker is recognised', () => {
  const buf = Buffer.alloc(SEGMENT_END_BYTES)
  writeSegmentEnd(buf, 0)
  const p = probeFrame(buf, 0, buf.length, MAX, newProbe())
  assert.equal(p.check, 'segment-end')
  assert.equal(p.length, SEGMENT_END_BYTES)
})

test('framing: zero bytes (preallocated or hole) are bad, not a record', () => {
  assert.equal(probeFrame(Buffer.alloc(64), 0, 64, MAX, newProbe()).check, 'bad')
})

test('checkpoint: round trip and CRC rejects a torn write (property)', () => {
  fc.assert(fc.property(fc.nat({ max: 2 ** 47 }), fc.nat({ max: 2 ** 47 }), fc.nat({ max: 2 ** 47 }), fc.nat({ max: 35 }), (a, b, c, flip) => {
    const buf = encodeCheckpoint({ durableOffset: a, indexedOffset: b, writtenAtMs: c })
    assert.deepEqual(decodeCheckpoint(buf), { durableOffset: a, indexedOffset: b, writtenAtMs: c })
    buf[flip] = (buf[flip] as number) ^ 0x40
    assert.equal(decodeCheckpoint(buf), null)
  }), { numRuns: 200 })
})

test('crc: the JS table CRC equals zlib.crc32 for any bytes and range (property)', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 1200 }), fc.nat(), fc.nat(), (bytes, a, b) => {
    const buf = Buffer.from(bytes)
    const s = bytes.length === 0 ? 0 : a % (bytes.length + 1)
    const e = s + (bytes.length - s === 0 ? 0 : b % (bytes.length - s + 1))
    const want = zlibCrc32(buf.subarray(s, e))
    assert.equal(crc32Js(buf, s, e), want)
    assert.equal(crc32Range(buf, s, e), want)
  }), { numRuns: 500 })
})
