// Pure parts of the JetStream store: the identifier -> subject token encoding and the chunk codec.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { decodeToken, edgeFromSubject, encodeToken, storeNames, uplinkSubject } from '../../cloud/store/jetstream/subjects.js'
import { decodeChunk, encodeChunk, recordEncodedBytes } from '../../cloud/store/jetstream/chunk-codec.js'
import type { BridgeRecord } from '../../src/protocol/bridge-frames.js'

const TOKEN = /^[A-Za-z0-9_=-]+$/

test('encodeToken: any string becomes a valid NATS token and decodes back', () => {
  fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (s) => {
    const t = encodeToken(s)
    assert.match(t, TOKEN) // no '.', '*', '>', whitespace; never empty
    assert.equal(decodeToken(t), s)
  }), { numRuns: 2000 })
})

test('encodeToken: distinct inputs give distinct tokens; plain names stay readable', () => {
  assert.equal(encodeToken('edge-01_A'), 'edge-01_A')
  assert.equal(encodeToken(''), '=')
  assert.equal(encodeToken('a.b'), 'a=2Eb')
  assert.equal(encodeToken('='), '=3D')
  assert.equal(encodeToken('*'), '=2A')
  assert.equal(encodeToken('>'), '=3E')
  fc.assert(fc.property(fc.string(), fc.string(), (a, b) => {
    if (a !== b) assert.notEqual(encodeToken(a), encodeToken(b))
  }), { numRuns: 2000 })
  assert.equal(decodeToken('=2'), undefined)
  assert.equal(decodeToken('a.b'), undefined)
  assert.equal(decodeToken('=FF'), undefined) // not UTF-8
})

test('uplink subjects carry the edge id and give it back', () => {
  const names = storeNames('TRIB')
  assert.equal(uplinkSubject(names, 'e1'), 'trib.up.e1')
  assert.equal(edgeFromSubject(names.uplinkPrefix, uplinkSubject(names, 'weird edge.*')), 'weird edge.*')
  assert.equal(edgeFromSubject(names.uplinkPrefix, 'trib.down.e1'), undefined)
  assert.throws(() => storeNames('bad.prefix'))
})

const recordArb: fc.Arbitrary<BridgeRecord> = fc.record({
  offset: fc.nat({ max: Number.MAX_SAFE_INTEGER - 1_000_000 }),
  len: fc.integer({ min: 1, max: 1000 }),
  timestampMs: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
  qos: fc.constantFrom(0 as const, 1 as const, 2 as const),
  retain: fc.boolean(),
  topic: fc.string({ unit: 'grapheme', maxLength: 30 }),
  payload: fc.uint8Array({ maxLength: 200 })
}).map((r) => ({ offset: r.offset, nextOffset: r.offset + r.len, timestampMs: r.timestampMs, qos: r.qos, retain: r.retain, topic: r.topic, payload: Buffer.from(r.payload) }))

test('chunk codec round-trips any records; truncated or padded chunks are refused', () => {
  fc.assert(fc.property(fc.array(recordArb, { maxLength: 20 }), (records) => {
    const bytes = records.reduce((n, r) => n + recordEncodedBytes(r), 0)
    const buf = encodeChunk(records, 0, records.length, bytes)
    const back = decodeChunk(buf)
    assert.ok(back !== undefined)
    assert.deepEqual(back.map((r) => ({ ...r, payload: Buffer.from(r.payload) })), records)
    if (buf.length > 5) assert.equal(decodeChunk(buf.subarray(0, buf.length - 1)), undefined)
    assert.equal(decodeChunk(Buffer.concat([buf, Buffer.from([0])])), undefined)
  }), { numRuns: 500 })
  assert.equal(decodeChunk(Buffer.from([2, 0, 0, 0, 0])), undefined) // unknown version
  assert.equal(decodeChunk(Buffer.from([1, 0xff, 0xff, 0xff, 0xff])), undefined) // count the buffer cannot hold
})

test('chunk codec encodes a sub-range of a record array', () => {
  const recs: BridgeRecord[] = [0, 1, 2, 3].map((i) => ({ offset: i * 10, nextOffset: i * 10 + 10, timestampMs: i, qos: 1, retain: false, topic: `t/${i}`, payload: Buffer.from([i]) }))
  const bytes = recordEncodedBytes(recs[1] as BridgeRecord) + recordEncodedBytes(recs[2] as BridgeRecord)
  const back = decodeChunk(encodeChunk(recs, 1, 3, bytes))
  assert.deepEqual(back?.map((r) => r.offset), [10, 20])
})
