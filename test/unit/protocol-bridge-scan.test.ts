// scanBatchFrame (the cloud's allocation-free BATCH check) must accept exactly what decodeFrame
// accepts, and its lazily decoded records and raw record walking must agree with decodeFrame.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  DEFAULT_FRAME_LIMITS, decodeFrame, encodeBatch, encodeBatchRaw, recordEnd, recordOffsetAt, recordTimestampAt, scanBatchFrame,
  type BridgeRecord
} from '../../src/protocol/bridge-frames.js'

const recordArb = fc.record({
  len: fc.integer({ min: 1, max: 300 }),
  ts: fc.integer({ min: 0, max: 2 ** 45 }),
  qos: fc.constantFrom(0 as const, 1 as const, 2 as const),
  retain: fc.boolean(),
  topic: fc.string({ maxLength: 20 }),
  payload: fc.uint8Array({ maxLength: 40 })
})

function build (base: number, specs: Array<{ len: number, ts: number, qos: 0 | 1 | 2, retain: boolean, topic: string, payload: Uint8Array }>): { records: BridgeRecord[], to: number } {
  let off = base
  const records = specs.map((s) => {
    const r = { offset: off, nextOffset: off + s.len, timestampMs: s.ts, qos: s.qos, retain: s.retain, topic: s.topic, payload: Buffer.from(s.payload) }
    off += s.len
    return r
  })
  return { records, to: off + 7 }
}

test('scanBatchFrame agrees with decodeFrame on valid frames and on every corruption', () => {
  const limits = { ...DEFAULT_FRAME_LIMITS, maxTopicBytes: 30 }
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 2 ** 40 }), fc.array(recordArb, { maxLength: 12 }),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), fc.option(fc.nat()),
    (base, specs, flips, cut) => {
      const { records, to } = build(base, specs)
      let buf = encodeBatch('edge-1', base, to, records, records.length)
      const good = scanBatchFrame(buf, limits)
      const ref = decodeFrame(buf, limits)
      assert.equal(good.ok, ref.ok)
      if (good.ok && ref.ok && ref.frame.type === 4) {
        assert.deepEqual(good.frame.records, ref.frame.records)
        assert.equal(good.frame.raw.count, records.length)
        // Walking the raw records finds every record's offset and timestamp.
        let at = good.frame.raw.recordsAt
        for (const r of records) {
          assert.equal(recordOffsetAt(buf, at), r.offset)
          assert.equal(recordTimestampAt(buf, at), r.timestampMs)
          at = recordEnd(buf, at)
        }
        assert.equal(at, buf.length)
        // A frame rebuilt from the raw record bytes decodes to the same records.
        const again = decodeFrame(encodeBatchRaw('edge-1', base, to, buf, good.frame.raw.recordsAt, buf.length, records.length), limits)
        assert.ok(again.ok && again.frame.type === 4)
        assert.deepEqual(again.frame.records, ref.frame.records)
      }
      buf = Buffer.from(buf)
      for (const [pos, v] of flips) if (buf.length > 0) buf[pos % buf.length] = v
      if (cut !== null) buf = buf.subarray(0, cut % (buf.length + 1))
      const a = scanBatchFrame(buf, limits)
      const b = decodeFrame(buf, limits)
      // decodeFrame also accepts other frame types; scanBatchFrame is for BATCH only.
      const bIsBatch = b.ok && b.frame.type === 4
      assert.equal(a.ok, bIsBatch, `scan ${a.ok ? 'ok' : a.error} vs decode ${b.ok ? 'ok' : b.error}`)
      if (a.ok && b.ok && b.frame.type === 4) assert.deepEqual(a.frame.records, b.frame.records)
    }
  ), { numRuns: 3000 })
})
