// The embedded cloud store keeps up to 1,024 messages per log record ("chunk"): reads that stop
// inside a chunk, restarts, replays from one message's seq and the log's record-size limit must
// all behave as if every message were its own record.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { openEmbeddedStore } from '../../cloud/store/open.js'
import type { CloudStore, Lease, StoredRecord } from '../../cloud/store/types.js'
import { silentLogger } from '../../src/log/index.js'
import { tempDir } from '../helpers/net.js'
import { edgeRecords } from '../contract/cloud-store-suite.js'
import { encodeBatch, scanBatchFrame, type BridgeRecord, type LazyBatchFrame } from '../../src/protocol/bridge-frames.js'

const settings = { segmentBytes: 256 * 1024, flushPolicy: 'interval' as const, flushIntervalMs: 2, maxRecordBytes: 16 * 1024, retentionBytes: 0, retentionMs: 0 }

async function lease (store: CloudStore, edgeId: string): Promise<Lease> {
  const out = await store.acquireLease(edgeId, 'node-a', 30_000, Date.now())
  assert.equal(out.status, 'ok')
  return (out as { lease: Lease }).lease
}

// Reads everything from `seq` in pages of `page` messages, reopening the store every `reopenEvery` pages.
async function readPaged (open: () => Promise<CloudStore>, first: CloudStore, seq: number, page: number, reopenEvery: number): Promise<{ records: StoredRecord[], store: CloudStore }> {
  let store = first
  const records: StoredRecord[] = []
  for (let pages = 1; ; pages++) {
    const b = await store.read(seq, { maxRecords: page })
    records.push(...b.records)
    if (b.status === 'end' || b.records.length === 0) return { records, store }
    seq = b.nextSeq
    if (pages % reopenEvery === 0) { await store.close(); store = await open() }
  }
}

test('messages read back once, in order, across chunk boundaries and restarts, with pages that stop inside chunks', async () => {
  const dir = await tempDir('cloud-chunks')
  const open = async (): Promise<CloudStore> => await openEmbeddedStore(dir.path, settings, silentLogger())
  let store = await open()
  try {
    const l = await lease(store, 'e1')
    // 3,000 messages of ~40 B in batches of 1,500: several chunks each (1,024 messages, 16 KiB log limit).
    const recs = edgeRecords(0, 3000, { len: 40 })
    await store.appendBatch('e1', { fromOffset: 0, toOffset: 60_000, records: recs.slice(0, 1500) }, l)
    await store.appendBatch('e1', { fromOffset: 60_000, toOffset: 120_000, records: recs.slice(1500) }, l)
    assert.equal((await store.stats()).records, 3000)
    const out = await readPaged(open, store, 0, 7, 50)
    store = out.store
    assert.deepEqual(out.records.map((r) => r.edgeOffset), recs.map((r) => r.offset))
    assert.deepEqual(out.records.map((r) => r.payload.toString()), recs.map((r) => r.payload.toString()))
    for (let i = 1; i < out.records.length; i++) assert.ok(out.records[i].seq > out.records[i - 1].seq, 'seqs increase')
    assert.equal((await store.stats()).records, 3000, 'the message count survives restarts')
  } finally {
    await store.close().catch(() => {})
    await dir.remove()
  }
})

test('a replay from one message\'s seq, from a time, and of one topic works after a restart', async () => {
  const dir = await tempDir('cloud-chunks')
  const open = async (): Promise<CloudStore> => await openEmbeddedStore(dir.path, settings, silentLogger())
  let store = await open()
  try {
    const l = await lease(store, 'e1')
    const recs = edgeRecords(0, 2000, { len: 40, topic: (i) => `t/${i % 4}`, tsBase: 5_000_000 })
    await store.appendBatch('e1', { fromOffset: 0, toOffset: 80_000, records: recs }, l)
    const all = (await readPaged(open, store, 0, 5000, 1000)).records
    const pick = all[1234]
    await store.close()
    store = await open()
    const b = await store.read(pick.seq, { maxRecords: 3 })
    assert.deepEqual(b.records.map((r) => r.edgeOffset), [recs[1234].offset, recs[1235].offset, recs[1236].offset])
    await store.close()
    store = await open()
    const fromTime = await store.seqForTime(5_000_000 + 1500)
    const t = await store.readTopic('e1', 't/0', fromTime, { maxRecords: 3 })
    assert.deepEqual(t.records.map((r) => r.timestampMs), [5_001_500, 5_001_504, 5_001_508])
    await store.close()
    store = await open()
    const next = await store.readTopic('e1', 't/0', t.nextSeq, { maxRecords: 2 })
    assert.deepEqual(next.records.map((r) => r.timestampMs), [5_001_512, 5_001_516])
  } finally {
    await store.close().catch(() => {})
    await dir.remove()
  }
})

test('a message that alone exceeds the log\'s record limit is refused, not split', async () => {
  const dir = await tempDir('cloud-chunks')
  const store = await openEmbeddedStore(dir.path, settings, silentLogger())
  try {
    const l = await lease(store, 'e1')
    const big = [{ offset: 0, nextOffset: 20_000, timestampMs: 1, qos: 1 as const, retain: false, topic: 't', payload: Buffer.alloc(17 * 1024) }]
    await assert.rejects(store.appendBatch('e1', { fromOffset: 0, toOffset: 20_000, records: big }, l))
    assert.equal(await store.committedOffset('e1'), 0, 'nothing acked')
  } finally {
    await store.close().catch(() => {})
    await dir.remove()
  }
})

test('scanned batches (stored from their raw bytes) and decoded ones mix: once each, in order, replays skipped', async () => {
  const dir = await tempDir('cloud-chunks')
  const open = async (): Promise<CloudStore> => await openEmbeddedStore(dir.path, settings, silentLogger())
  let store = await open()
  const scanned = (from: number, to: number, recs: BridgeRecord[]): LazyBatchFrame => {
    const res = scanBatchFrame(encodeBatch('e1', from, to, recs, recs.length))
    assert.ok(res.ok)
    return res.frame
  }
  try {
    const l = await lease(store, 'e1')
    const recs = edgeRecords(0, 5000, { len: 40 })
    // One small frame (one chunk as is), one large (split into chunks), one replayed in part
    // (decoded path), one replayed entirely, one plain.
    let out = await store.appendBatch('e1', scanned(0, 4000, recs.slice(0, 100)), l)
    assert.deepEqual(out, { status: 'ok', committedOffset: 4000, appended: 100 })
    out = await store.appendBatch('e1', scanned(4000, 120_000, recs.slice(100, 3000)), l)
    assert.deepEqual(out, { status: 'ok', committedOffset: 120_000, appended: 2900 })
    out = await store.appendBatch('e1', scanned(80_000, 160_000, recs.slice(2000, 4000)), l)
    assert.deepEqual(out, { status: 'ok', committedOffset: 160_000, appended: 1000 })
    out = await store.appendBatch('e1', scanned(0, 4000, recs.slice(0, 100)), l)
    assert.deepEqual(out, { status: 'ok', committedOffset: 160_000, appended: 0 })
    out = await store.appendBatch('e1', { fromOffset: 160_000, toOffset: 200_000, records: recs.slice(4000) }, l)
    assert.deepEqual(out, { status: 'ok', committedOffset: 200_000, appended: 1000 })
    await store.close()
    store = await open()
    assert.equal(await store.committedOffset('e1'), 200_000)
    const all = await readPaged(open, store, 0, 333, 4)
    store = all.store
    assert.deepEqual(all.records.map((r) => r.edgeOffset), recs.map((r) => r.offset))
    assert.deepEqual(all.records.map((r) => r.payload.toString()), recs.map((r) => r.payload.toString()))
    assert.equal((await store.stats()).records, 5000)
  } finally {
    await store.close().catch(() => {})
    await dir.remove()
  }
})

test('reads that end exactly at a chunk before a segment roll continue in the next segment', async () => {
  const dir = await tempDir('cloud-chunks')
  const open = async (): Promise<CloudStore> => await openEmbeddedStore(dir.path, { ...settings, segmentBytes: 64 * 1024 }, silentLogger())
  let store = await open()
  try {
    const l = await lease(store, 'e1')
    // 400 batches of 10 messages: one chunk each, ~1 KiB, so many chunks end a segment.
    const recs = edgeRecords(0, 4000, { len: 40, topic: () => 'devices/x/telemetry-with-a-longer-topic-name' })
    for (let b = 0; b < 400; b++) await store.appendBatch('e1', { fromOffset: b * 400, toOffset: (b + 1) * 400, records: recs.slice(b * 10, b * 10 + 10) }, l)
    // Pages of exactly one chunk: every nextSeq is a chunk's end, some of them a segment's end.
    const live = await readPaged(open, store, 0, 10, 1_000_000)
    assert.deepEqual(live.records.map((r) => r.edgeOffset), recs.map((r) => r.offset))
    // The same after restarts (chunk starts not known in memory).
    const restarted = await readPaged(open, live.store, 0, 10, 7)
    store = restarted.store
    assert.deepEqual(restarted.records.map((r) => r.edgeOffset), recs.map((r) => r.offset))
  } finally {
    await store.close().catch(() => {})
    await dir.remove()
  }
})
