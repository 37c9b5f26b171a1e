import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  BRIDGE_PROTOCOL_VERSION, DEFAULT_FRAME_LIMITS, FrameType, RefuseCode, decodeFrame, encodeFrame,
  type BridgeFrame, type BridgeRecord, type QoSLevel
} from '../../src/protocol/bridge-frames.js'

const u53 = fc.maxSafeInteger().map((n) => Math.abs(n))
const small = fc.string({ maxLength: 40 })
const qos = fc.constantFrom<QoSLevel>(0, 1, 2)
const payload = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a))

// Records in log order: gaps between them stand for filtered-out records.
const batch = fc.record({
  edgeId: small,
  from: fc.nat({ max: 2 ** 40 }),
  items: fc.array(fc.record({ gap: fc.nat({ max: 1000 }), len: fc.integer({ min: 1, max: 5000 }), ts: u53, qos, retain: fc.boolean(), topic: fc.string({ maxLength: 60, unit: 'grapheme' }), payload }), { maxLength: 30 }),
  tail: fc.nat({ max: 1000 })
}).map(({ edgeId, from, items, tail }): BridgeFrame => {
  let at = from
  const records: BridgeRecord[] = items.map((it) => {
    const offset = at + it.gap
    at = offset + it.len
    return { offset, nextOffset: at, timestampMs: it.ts, qos: it.qos, retain: it.retain, topic: it.topic, payload: it.payload }
  })
  return { type: FrameType.BATCH, edgeId, fromOffset: from, toOffset: at + tail, records }
})

const anyFrame: fc.Arbitrary<BridgeFrame> = fc.oneof(
  fc.record({ edgeId: small, token: small, checkpoint: u53, lastDownlinkSeq: u53 }).map((f) => ({ type: FrameType.HELLO, ...f })),
  fc.record({ committedOffset: u53, heartbeatMs: fc.nat({ max: 0xffffffff }), maxFrameBytes: fc.nat({ max: 0xffffffff }) }).map((f) => ({ type: FrameType.WELCOME, ...f })),
  fc.record({ code: fc.constantFrom(RefuseCode.AUTH, RefuseCode.VERSION, RefuseCode.BUSY, RefuseCode.FENCED), reason: small }).map((f) => ({ type: FrameType.REFUSE, ...f })),
  batch,
  u53.map((committedOffset) => ({ type: FrameType.ACK, committedOffset })),
  fc.record({ seq: u53, expiresAtMs: u53, qos, retain: fc.boolean(), topic: fc.string({ maxLength: 60, unit: 'grapheme' }), payload }).map((f) => ({ type: FrameType.DOWNLINK, ...f })),
  u53.map((seq) => ({ type: FrameType.DOWNLINK_ACK, seq })),
  fc.nat({ max: 0xffffffff }).map((nonce) => ({ type: FrameType.PING, nonce })),
  fc.nat({ max: 0xffffffff }).map((nonce) => ({ type: FrameType.PONG, nonce })),
  fc.record({ code: small, message: small }).map((f) => ({ type: FrameType.ERROR, ...f }))
) as fc.Arbitrary<BridgeFrame>

test('every frame survives encode then decode unchanged', () => {
  fc.assert(fc.property(anyFrame, (frame) => {
    const decoded = decodeFrame(encodeFrame(frame))
    assert.equal(decoded.ok, true, decoded.ok ? '' : decoded.error)
    assert.deepEqual(decoded.ok && decoded.frame, frame)
  }), { numRuns: 2000 })
})

test('garbage never throws: arbitrary bytes decode to a result', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
    const r = decodeFrame(Buffer.from(bytes))
    assert.equal(typeof r.ok, 'boolean')
  }), { numRuns: 5000 })
})

test('corrupted and truncated valid frames never throw', () => {
  fc.assert(fc.property(anyFrame, fc.nat(), fc.nat({ max: 255 }), fc.nat(), (frame, pos, byte, cut) => {
    const buf = encodeFrame(frame)
    const flipped = Buffer.from(buf)
    flipped[pos % buf.length] = byte
    const r1 = decodeFrame(flipped)
    assert.equal(typeof r1.ok, 'boolean')
    const r2 = decodeFrame(buf.subarray(0, cut % buf.length))
    assert.equal(r2.ok, false)
  }), { numRuns: 3000 })
})

test('header checks: magic, version, type, trailing bytes', () => {
  const ping = encodeFrame({ type: FrameType.PING, nonce: 7 })
  assert.equal(decodeFrame(Buffer.from('hello')).ok, false)
  const badVersion = Buffer.from(ping); badVersion[2] = BRIDGE_PROTOCOL_VERSION + 1
  const r = decodeFrame(badVersion)
  assert.ok(!r.ok && r.error.includes('version'))
  const badType = Buffer.from(ping); badType[3] = 99
  const t = decodeFrame(badType)
  assert.ok(!t.ok && t.error.includes('unknown frame type'))
  const trailing = decodeFrame(Buffer.concat([ping, Buffer.from([0])]))
  assert.ok(!trailing.ok && trailing.error.includes('trailing'))
})

test('limits: frame bytes, records per batch, topic length', () => {
  const rec = (i: number, topic = 't'): BridgeRecord => ({ offset: i * 10, nextOffset: i * 10 + 10, timestampMs: 1, qos: 1, retain: false, topic, payload: Buffer.alloc(10) })
  const big = encodeFrame({ type: FrameType.BATCH, edgeId: 'e', fromOffset: 0, toOffset: 100, records: Array.from({ length: 10 }, (_, i) => rec(i)) })
  const tooBig = decodeFrame(big, { ...DEFAULT_FRAME_LIMITS, maxFrameBytes: big.length - 1 })
  assert.ok(!tooBig.ok && tooBig.error.includes('exceeds the limit'))
  const tooMany = decodeFrame(big, { ...DEFAULT_FRAME_LIMITS, maxRecordsPerBatch: 9 })
  assert.ok(!tooMany.ok && tooMany.error.includes('records exceeds'))
  const longTopic = encodeFrame({ type: FrameType.BATCH, edgeId: 'e', fromOffset: 0, toOffset: 10, records: [rec(0, 'x'.repeat(100))] })
  const tl = decodeFrame(longTopic, { ...DEFAULT_FRAME_LIMITS, maxTopicBytes: 99 })
  assert.ok(!tl.ok && tl.error.includes('over the limit'))
})

test('a batch whose records are out of log order is refused', () => {
  const r = (offset: number, nextOffset: number): BridgeRecord => ({ offset, nextOffset, timestampMs: 1, qos: 0, retain: false, topic: 't', payload: Buffer.alloc(1) })
  const backwards = encodeFrame({ type: FrameType.BATCH, edgeId: 'e', fromOffset: 0, toOffset: 100, records: [r(50, 60), r(10, 20)] })
  const res = decodeFrame(backwards)
  assert.ok(!res.ok && res.error.includes('out of order'))
  const past = encodeFrame({ type: FrameType.BATCH, edgeId: 'e', fromOffset: 0, toOffset: 30, records: [r(10, 40)] })
  assert.equal(decodeFrame(past).ok, false)
})

test('a lying record count cannot make the decoder allocate', () => {
  const frame = encodeFrame({ type: FrameType.BATCH, edgeId: 'e', fromOffset: 0, toOffset: 0, records: [] })
  frame.writeUInt32BE(60_000, frame.length - 4)
  const res = decodeFrame(frame)
  assert.ok(!res.ok && res.error.includes('does not fit'))
})
