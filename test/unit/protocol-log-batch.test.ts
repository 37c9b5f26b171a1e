// LOG_BATCH: the edge's log bytes as they are, in runs. scanLogBatchFrame must accept exactly
// well-formed frames (never throw on garbage) and its records must be the ones encoded.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { encodeRecord, frameBytes } from '../../src/commitlog/format.js'
import {
  DEFAULT_FRAME_LIMITS, FrameType, LazyLogBatchFrame, decodeBatchHeader, decodeFrame, encodeLogBatch, forEachLogRecord,
  scanLogBatchFrame, type BridgeRecord
} from '../../src/protocol/bridge-frames.js'

interface Spec { gapBefore: number, ts: number, qos: 0 | 1 | 2, retain: boolean, topic: string, clientId: string, payload: Uint8Array }

const specArb = fc.record({
  gapBefore: fc.constantFrom(0, 0, 0, 40, 300),
  ts: fc.integer({ min: 0, max: 2 ** 45 }),
  qos: fc.constantFrom(0 as const, 1 as const, 2 as const),
  retain: fc.boolean(),
  topic: fc.string({ maxLength: 20 }),
  clientId: fc.string({ maxLength: 8 }),
  payload: fc.uint8Array({ maxLength: 60 })
})

// Records framed as in an edge log from offset `base`; a gap starts a new run (records the edge
// left out lie there).
function build (base: number, specs: Spec[]): { runs: Array<{ offset: number, frames: Buffer }>, records: BridgeRecord[], to: number } {
  const runs: Array<{ offset: number, frames: Buffer[] }> = []
  const records: BridgeRecord[] = []
  let off = base
  for (const s of specs) {
    const topic = Buffer.from(s.topic)
    const clientId = Buffer.from(s.clientId)
    const payload = Buffer.from(s.payload)
    const frame = Buffer.alloc(frameBytes(topic.length, clientId.length, payload.length))
    encodeRecord(frame, 0, s.ts, s.qos, s.retain, topic, clientId, payload)
    if (s.gapBefore > 0 || runs.length === 0) { off += s.gapBefore; runs.push({ offset: off, frames: [] }) }
    runs[runs.length - 1].frames.push(frame)
    records.push({ offset: off, nextOffset: off + frame.length, timestampMs: s.ts, qos: s.qos, retain: s.retain, topic: topic.toString(), payload })
    off += frame.length
  }
  return { runs: runs.map((r) => ({ offset: r.offset, frames: Buffer.concat(r.frames) })), records, to: off + 9 }
}

test('a LOG_BATCH scans to the records it was built from; decodeFrame and the header agree (property)', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 40 }), fc.array(specArb, { maxLength: 15 }), (base, specs) => {
    const { runs, records, to } = build(base, specs)
    const buf = encodeLogBatch('edge-1', base, to, runs)
    const res = scanLogBatchFrame(buf)
    assert.ok(res.ok, res.ok ? '' : res.error)
    assert.ok(res.frame instanceof LazyLogBatchFrame)
    assert.equal(res.frame.type, FrameType.BATCH)
    assert.deepEqual({ edgeId: res.frame.edgeId, from: res.frame.fromOffset, to: res.frame.toOffset }, { edgeId: 'edge-1', from: base, to })
    assert.equal(res.frame.raw.count, records.length)
    assert.equal(res.frame.raw.runs, runs.length)
    assert.equal(res.frame.raw.retained, records.some((r) => r.retain))
    assert.equal(res.frame.raw.firstOffset, records.length === 0 ? to : records[0].offset)
    assert.equal(res.frame.raw.maxTimestampMs, Math.max(0, ...records.map((r) => r.timestampMs)))
    assert.deepEqual(res.frame.records, records)
    const offsets: number[] = []
    forEachLogRecord(res.frame.raw, (_b, _at, offset) => { offsets.push(offset) })
    assert.deepEqual(offsets, records.map((r) => r.offset))
    const dec = decodeFrame(buf)
    assert.ok(dec.ok && dec.frame.type === FrameType.BATCH)
    assert.deepEqual(dec.frame.records, records)
    const h = decodeBatchHeader(buf)
    assert.deepEqual(h && { type: h.type, count: h.count, to: h.toOffset }, { type: FrameType.LOG_BATCH, count: records.length, to })
  }), { numRuns: 300 })
})

test('a corrupted or cut LOG_BATCH is refused as a value, never a throw; what passes is well-formed (property)', () => {
  const limits = { ...DEFAULT_FRAME_LIMITS, maxTopicBytes: 40 }
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 2 ** 40 }), fc.array(specArb, { minLength: 1, maxLength: 8 }),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), fc.option(fc.nat()),
    (base, specs, flips, cut) => {
      const { runs, to } = build(base, specs)
      let buf = Buffer.from(encodeLogBatch('edge-1', base, to, runs))
      for (const [pos, v] of flips) buf[pos % buf.length] = v
      if (cut !== null) buf = buf.subarray(0, cut % (buf.length + 1))
      const res = scanLogBatchFrame(buf, limits)
      if (!res.ok) { assert.equal(typeof res.error, 'string'); return }
      // Accepted: records are in log order inside [from, to], each within its own bounds.
      let prev = res.frame.fromOffset
      for (const r of res.frame.records) {
        assert.ok(r.offset >= prev && r.nextOffset > r.offset && r.nextOffset <= res.frame.toOffset)
        assert.ok(r.qos <= 2)
        prev = r.nextOffset
      }
      assert.equal(res.frame.records.length, res.frame.raw.count)
    }), { numRuns: 500 })
})

test('LOG_BATCH refusals: runs out of order, a wrong count, bad flags, trailing bytes, another frame type', () => {
  const specs: Spec[] = [0, 1, 2].map((i) => ({ gapBefore: i === 2 ? 50 : 0, ts: 1000 + i, qos: 1, retain: false, topic: `t/${i}`, clientId: 'c', payload: new Uint8Array([i]) }))
  const { runs, to } = build(100, specs)
  const ok = encodeLogBatch('e', 100, to, runs)
  assert.ok(scanLogBatchFrame(ok).ok)
  const err = (b: Buffer): string => { const r = scanLogBatchFrame(b); assert.ok(!r.ok); return r.error }
  assert.match(err(encodeLogBatch('e', 100, to, [runs[1], runs[0]])), /out of order/)
  assert.match(err(encodeLogBatch('e', 100, runs[1].offset, runs)), /out of order/) // a run past toOffset
  assert.match(err(encodeLogBatch('e', runs[1].offset, to, runs)), /out of order/) // a run before fromOffset
  const wrongCount = Buffer.from(ok); wrongCount.writeUInt32BE(4, 4 + 2 + 1 + 16); assert.match(err(wrongCount), /count|runs/)
  const flags = Buffer.from(ok); flags[4 + 2 + 1 + 16 + 4 + 4 + 12 + 20] = 3; assert.match(err(flags), /flags/)
  assert.match(err(Buffer.concat([ok, Buffer.from([0])])), /trailing|does not fit|magic|truncated/)
  const asBatch = Buffer.from(ok); asBatch[3] = FrameType.BATCH
  assert.ok(!scanLogBatchFrame(asBatch).ok)
})
