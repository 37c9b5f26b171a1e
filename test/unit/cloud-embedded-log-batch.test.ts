// The embedded cloud store and LOG_BATCH frames (the edge's log bytes): stored as they came when
// they fit the log, split when they do not, mixed with replays, read back once each and in order
// across restarts; the dispatcher's filtered read skips whole chunks only when nothing in them
// can be wanted.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { openEmbeddedStore } from '../../cloud/store/open.js'
import type { EmbeddedCloudStore } from '../../cloud/store/embedded.js'
import type { CloudStore, Lease } from '../../cloud/store/types.js'
import { encodeRecord, frameBytes } from '../../src/commitlog/format.js'
import { silentLogger } from '../../src/log/index.js'
import { encodeLogBatch, scanLogBatchFrame, type BridgeRecord, type LazyLogBatchFrame } from '../../src/protocol/bridge-frames.js'
import { tempDir } from '../helpers/net.js'

const settings = { segmentBytes: 256 * 1024, flushPolicy: 'interval' as const, flushIntervalMs: 2, maxRecordBytes: 16 * 1024, retentionBytes: 0, retentionMs: 0 }

interface Framed { record: BridgeRecord, frame: Buffer }

// `count` records framed as in an edge log, contiguous from `from`.
function edgeLog (from: number, count: number, retainEvery = 0): Framed[] {
  const out: Framed[] = []
  let off = from
  for (let i = 0; i < count; i++) {
    const topic = Buffer.from(`devices/${i % 3}/telemetry`)
    const clientId = Buffer.from(`dev-${i % 3}`)
    const payload = Buffer.from(`m-${i}`)
    const retain = retainEvery > 0 && i % retainEvery === retainEvery - 1
    const frame = Buffer.alloc(frameBytes(topic.length, clientId.length, payload.length))
    encodeRecord(frame, 0, 1_700_000_000_000 + i, 1, retain, topic, clientId, payload)
    out.push({ record: { offset: off, nextOffset: off + frame.length, timestampMs: 1_700_000_000_000 + i, qos: 1, retain, topic: topic.toString(), payload }, frame })
    off += frame.length
  }
  return out
}

// A scanned LOG_BATCH of `recs` (consecutive ones form a run) covering [from, to).
function logBatch (from: number, to: number, recs: Framed[]): LazyLogBatchFrame {
  const runs: Array<{ offset: number, frames: Buffer[] }> = []
  for (const r of recs) {
    const last = runs[runs.length - 1]
    if (last !== undefined && last.offset + last.frames.reduce((n, f) => n + f.length, 0) === r.record.offset) last.frames.push(r.frame)
    else runs.push({ offset: r.record.offset, frames: [r.frame] })
  }
  const res = scanLogBatchFrame(encodeLogBatch('e1', from, to, runs.map((r) => ({ offset: r.offset, frames: Buffer.concat(r.frames) }))))
  assert.ok(res.ok, res.ok ? '' : res.error)
  return res.frame
}

async function lease (store: CloudStore, edgeId: string): Promise<Lease> {
  const out = await store.acquireLease(edgeId, 'node-a', 30_000, Date.now())
  assert.equal(out.status, 'ok')
  return (out as { lease: Lease }).lease
}

async function readAll (store: CloudStore, page: number): Promise<Array<{ edgeOffset: number, topic: string, payload: string, ts: number, retain: boolean }>> {
  const out: Array<{ edgeOffset: number, topic: string, payload: string, ts: number, retain: boolean }> = []
  for (let seq = 0; ;) {
    const b = await store.read(seq, { maxRecords: page })
    for (const r of b.records) out.push({ edgeOffset: r.edgeOffset, topic: r.topic, payload: r.payload.toString(), ts: r.timestampMs, retain: r.retain })
    if (b.records.length === 0) return out
    seq = b.nextSeq
  }
}

const view = (recs: Framed[]): Array<{ edgeOffset: number, topic: string, payload: string, ts: number, retain: boolean }> =>
  recs.map(({ record: r }) => ({ edgeOffset: r.offset, topic: r.topic, payload: r.payload.toString(), ts: r.timestampMs, retain: r.retain }))

test('LOG_BATCH frames: stored as they came or split when too large, replays skipped, read back once each in order across restarts', async () => {
  const dir = await tempDir('cloud-logbatch')
  const open = async (): Promise<CloudStore> => await openEmbeddedStore(dir.path, settings, silentLogger())
  let store = await open()
  try {
    const l = await lease(store, 'e1')
    const log = edgeLog(0, 3000)
    const at = (i: number): number => log[i].record.offset
    const sent: Framed[] = []
    // 1. Small: one chunk as is. 2. ~60 KB, over the 16 KiB log limit: split. 3. A partial replay.
    // 4. A full replay. 5. Two runs (the edge left records 2600..2699 out).
    let out = await store.appendBatch('e1', logBatch(0, at(100), log.slice(0, 100)), l)
    assert.deepEqual(out, { status: 'ok', committedOffset: at(100), appended: 100 })
    sent.push(...log.slice(0, 100))
    out = await store.appendBatch('e1', logBatch(at(100), at(1500), log.slice(100, 1500)), l)
    assert.deepEqual(out, { status: 'ok', committedOffset: at(1500), appended: 1400 })
    sent.push(...log.slice(100, 1500))
    out = await store.appendBatch('e1', logBatch(at(1000), at(2000), log.slice(1000, 2000)), l)
    assert.deepEqual(out, { status: 'ok', committedOffset: at(2000), appended: 500 })
    sent.push(...log.slice(1500, 2000))
    out = await store.appendBatch('e1', logBatch(0, at(100), log.slice(0, 100)), l)
    assert.deepEqual(out, { status: 'ok', committedOffset: at(2000), appended: 0 })
    const gapped = [...log.slice(2000, 2100), ...log.slice(2200, 2250)]
    out = await store.appendBatch('e1', logBatch(at(2000), at(2300), gapped), l)
    assert.deepEqual(out, { status: 'ok', committedOffset: at(2300), appended: 150 })
    sent.push(...gapped)
    assert.deepEqual(await readAll(store, 77), view(sent))
    await store.close()
    store = await open()
    assert.equal(await store.committedOffset('e1'), at(2300))
    assert.deepEqual(await readAll(store, 333), view(sent))
    assert.equal((await store.stats()).records, sent.length)
    // Replays of one topic and from a time reach into LOG_BATCH chunks after the restart.
    const topic = await store.readTopic('e1', 'devices/1/telemetry', 0, { maxRecords: 10_000 })
    assert.deepEqual(topic.records.map((r) => r.edgeOffset), sent.filter((r) => r.record.topic === 'devices/1/telemetry').map((r) => r.record.offset))
    const seq = await store.seqForTime(log[2210].record.timestampMs)
    const from = await store.read(seq, { maxRecords: 1 })
    assert.equal(from.records[0].edgeOffset, log[2210].record.offset)
  } finally {
    await store.close().catch(() => {})
    await dir.remove()
  }
})

test('the dispatcher\'s filtered read skips LOG_BATCH chunks for a quiet edge unless they hold a retained message', async () => {
  const dir = await tempDir('cloud-logbatch-dispatch')
  const store = await openEmbeddedStore(dir.path, settings, silentLogger()) as EmbeddedCloudStore
  try {
    const l = await lease(store, 'e1')
    const plain = edgeLog(0, 50)
    const withRetained = edgeLog(plain[49].record.nextOffset, 50, 20) // records 19 and 39 retained
    await store.appendBatch('e1', logBatch(0, plain[49].record.nextOffset, plain), l)
    await store.appendBatch('e1', logBatch(withRetained[0].record.offset, withRetained[49].record.nextOffset, withRetained), l)
    const onlyRetained = (_e: string, _t: string, retain: boolean): boolean => retain
    // Quiet edge: the plain chunk is skipped whole, the other walked; only retained ones returned.
    const walked: string[] = []
    const quiet = await store.readForDispatch(0, 10_000, (e, t, retain) => { walked.push(t); return onlyRetained(e, t, retain) }, () => true)
    assert.equal(quiet.scanned, 100)
    assert.equal(walked.length, 50, 'only the chunk with retained messages was walked')
    assert.deepEqual(quiet.records.map((r) => r.payload.toString()), ['m-19', 'm-39'])
    // Not quiet: every message is looked at; the filter decides.
    const all = await store.readForDispatch(0, 10_000, () => true, () => false)
    assert.equal(all.records.length, 100)
    assert.equal(all.scanned, 100)
    // Pages that stop inside a chunk continue where they stopped.
    const firstPage = await store.readForDispatch(0, 30, () => true, () => false)
    const rest = await store.readForDispatch(firstPage.nextSeq, 10_000, () => true, () => false)
    assert.deepEqual([...firstPage.records, ...rest.records].map((r) => r.payload.toString()), [...plain, ...withRetained].map((r) => r.record.payload.toString()))
  } finally {
    await store.close().catch(() => {})
    await dir.remove()
  }
})

test('quiet chunks are skipped from their in-memory summary across segment rolls and restarts; retained ones still arrive', async () => {
  const dir = await tempDir('cloud-logbatch-skip')
  const open = async (): Promise<EmbeddedCloudStore> => await openEmbeddedStore(dir.path, { ...settings, segmentBytes: 64 * 1024 }, silentLogger())
  let store = await open()
  try {
    const l = await lease(store, 'e1')
    // 60 chunks of 200 messages (~9 KB each): several segment rolls; chunk 37 holds retained ones.
    const all: Framed[] = []
    let from = 0
    for (let k = 0; k < 60; k++) {
      const recs = edgeLog(from, 200, k === 37 ? 100 : 0)
      await store.appendBatch('e1', logBatch(from, recs[199].record.nextOffset, recs), l)
      all.push(...recs)
      from = recs[199].record.nextOffset
    }
    const retained = all.filter((r) => r.record.retain).map((r) => r.record.payload.toString())
    assert.equal(retained.length, 2)
    const drain = async (s: EmbeddedCloudStore, quiet: boolean): Promise<{ payloads: string[], scanned: number }> => {
      const payloads: string[] = []
      let scanned = 0
      for (let seq = 0; ;) {
        const b = await s.readForDispatch(seq, 1000, (_e, _t, retain) => !quiet || retain, () => quiet)
        payloads.push(...b.records.map((r) => r.payload.toString()))
        scanned += b.scanned
        if (b.records.length === 0 && b.scanned === 0) return { payloads, scanned }
        seq = b.nextSeq
      }
    }
    assert.deepEqual(await drain(store, true), { payloads: retained, scanned: 12_000 })
    assert.deepEqual(await drain(store, false), { payloads: all.map((r) => r.record.payload.toString()), scanned: 12_000 })
    // After a restart the summaries are learned by reading; the results are the same.
    await store.close()
    store = await open()
    assert.deepEqual(await drain(store, true), { payloads: retained, scanned: 12_000 })
    assert.deepEqual(await drain(store, true), { payloads: retained, scanned: 12_000 })
  } finally {
    await store.close().catch(() => {})
    await dir.remove()
  }
})
