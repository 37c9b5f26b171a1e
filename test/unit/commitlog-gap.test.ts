// Replicate-ahead window (CommitLogOptions.replicateAheadBytes, README "Offsets"): after a dirty
// shutdown recovery starts the next segment W bytes past the recovered end, so no offset a replica
// may hold is reused; every read by offset crosses that gap. A power loss is simulated as in
// commitlog-recovery.test.ts (close, put back the dirty marker and a stale checkpoint) plus a cut
// of the last segment (the page cache that never reached the disk).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CommitLog, type CommitLogOptions } from '../../src/commitlog/index.js'
import { writeCheckpoint } from '../../src/commitlog/checkpoint.js'
import { newRawRead, readRaw, rawFrameLength } from '../../src/commitlog/raw-read.js'
import { silentLogger } from '../../src/log/index.js'
import { tempDir } from '../helpers/net.js'

const W = 100_000

function options (dir: string, extra: Partial<CommitLogOptions> = {}): CommitLogOptions {
  return {
    dir, segmentBytes: 4096, flushPolicy: 'interval', flushIntervalMs: 2, maxRecordBytes: 1024,
    retentionBytes: 0, retentionMs: 0, replicateAheadBytes: W, log: silentLogger(), ...extra
  }
}

interface Written { offset: number, nextOffset: number, ts: number, payload: string }

// Appends `n` records with timestamps ts0 + i (topics t/0..t/3), payloads `${prefix}${i}` padded
// to 100 bytes: 136-byte frames, 30 per 4 KiB segment.
function put (log: CommitLog, prefix: string, n: number, ts0: number): Written[] {
  const out: Written[] = []
  for (let i = 0; i < n; i++) {
    const payload = `${prefix}${i}`.padEnd(100, '.')
    const r = log.append({ topic: `t/${i % 4}`, payload: Buffer.from(payload), qos: 1, retain: false, clientId: 'c', timestampMs: ts0 + i })
    out.push({ offset: r.offset, nextOffset: r.nextOffset, ts: r.timestampMs, payload })
  }
  return out
}

function lastSegment (dir: string): string {
  return join(dir, readdirSync(dir).filter((n) => n.endsWith('.log')).sort().at(-1) as string)
}

// As after a power loss: the log was not closed (dirty marker, checkpoint at `durable`) and the
// last segment lost everything past `keepTo` (a global offset inside it).
async function powerLoss (dir: string, log: CommitLog, keepTo: number): Promise<void> {
  await log.close()
  writeFileSync(join(dir, 'DIRTY'), 'x')
  writeCheckpoint(join(dir, 'checkpoint'), { durableOffset: keepTo, indexedOffset: keepTo, writtenAtMs: 0 }, false)
  const seg = lastSegment(dir)
  const base = Number(seg.slice(-24, -4))
  assert.ok(keepTo >= base && keepTo <= base + statSync(seg).size, 'the cut lies in the last segment')
  truncateSync(seg, keepTo - base)
}

function readAll (log: CommitLog, from = log.startOffset): Written[] {
  const out: Written[] = []
  let pos = from
  for (let b = log.read(pos, { maxRecords: 7 }); b.status !== 'end'; b = log.read(pos, { maxRecords: 7 })) {
    for (const r of b.records) out.push({ offset: r.offset, nextOffset: r.nextOffset, ts: r.timestampMs, payload: r.payload.toString() })
    assert.ok(b.nextOffset > pos || b.status === 'truncated', 'reads make progress')
    pos = b.nextOffset
  }
  return out
}

// Every frame from `from` by raw reads (the bridge's path), as [offset, length] pairs.
function rawAll (log: CommitLog, from: number): Array<[number, number]> {
  const out: Array<[number, number]> = []
  const buf = Buffer.alloc(600)
  const r = newRawRead()
  let pos = from
  for (let guard = 0; guard < 10_000; guard++) {
    readRaw(log, pos, buf, 0, { maxBytes: 600, maxRecords: 5, maxOffset: log.endOffset, maxRecordBytes: 1024 }, r)
    if (r.status === 'end') return out
    assert.equal(r.status, 'ok')
    let at = r.start
    let off = r.firstOffset
    for (let k = 0; k < r.records; k++) { const len = rawFrameLength(buf, at); out.push([off, len]); at += len; off += len }
    assert.ok(r.nextOffset > pos, 'raw reads make progress')
    pos = r.nextOffset
  }
  throw new Error('raw reads did not reach the end')
}

const payloads = (ws: Written[]): string[] => ws.map((w) => w.payload)

test('dirty recovery leaves a gap of W after the recovered end; reads by offset, raw, topic and time cross it', async () => {
  const tmp = await tempDir('clgap')
  try {
    const dir = tmp.path
    let log = await CommitLog.open(options(dir))
    const before = put(log, 'a', 100, 1000) // 4 segments: 30, 30, 30, 10 records
    await log.flush()
    const keep = before[94] as Written // the power loss keeps records 0..94
    await powerLoss(dir, log, keep.nextOffset)

    log = await CommitLog.open(options(dir))
    try {
      assert.equal(log.recovery.dirty, true)
      assert.equal(log.recovery.gapBytes, W)
      // The recovered segment was sealed with an end-of-segment marker (8 bytes) before the gap.
      assert.equal(log.recovery.endOffset, keep.nextOffset + 8)
      assert.equal(log.endOffset, keep.nextOffset + 8 + W)
      assert.equal(log.durableOffset, log.endOffset)
      const after = put(log, 'b', 60, 2000)
      assert.equal((after[0] as Written).offset, keep.nextOffset + 8 + W, 'no offset below recovered end + W is reused')
      await log.flush()
      const kept = before.slice(0, 95)
      const expected = [...payloads(kept), ...payloads(after)]
      // read(): from the start, from inside the gap, from the gap's first byte.
      assert.deepEqual(payloads(readAll(log)), expected)
      assert.deepEqual(payloads(readAll(log, keep.nextOffset + 8 + 1234)), payloads(after))
      assert.deepEqual(payloads(readAll(log, keep.nextOffset)), payloads(after))
      // Raw reads (the bridge): the same frames at the same offsets; a read starting in the gap
      // returns no record and continues past it.
      const frames = rawAll(log, log.startOffset)
      assert.deepEqual(frames, [...kept, ...after].map((w) => [w.offset, w.nextOffset - w.offset]))
      const r = readRaw(log, keep.nextOffset + 8 + 5, Buffer.alloc(600), 0, { maxBytes: 600, maxRecords: 5, maxOffset: log.endOffset, maxRecordBytes: 1024 }, newRawRead())
      assert.equal(r.status, 'ok')
      assert.equal(r.records, 0)
      assert.equal(r.nextOffset, (after[0] as Written).offset)
      assert.equal(log.skipGap(keep.nextOffset + 8 + 5), (after[0] as Written).offset)
      assert.equal(log.skipGap((after[0] as Written).offset), (after[0] as Written).offset)
      // Lag in bytes leaves the gap out.
      assert.equal(log.gapBytesIn(0, log.endOffset), W)
      assert.equal(log.gapBytesIn(keep.nextOffset + 8 + 10, log.endOffset), W - 10)
      assert.equal(log.gapBytesIn((after[0] as Written).offset, log.endOffset), 0)
      // Topic reads: t/1 holds records 1, 5, ... of both runs.
      const t1 = log.readTopic('t/1', 0, { maxRecords: 1000 })
      const odd = (_: Written, i: number): boolean => i % 4 === 1
      assert.deepEqual(t1.records.map((x) => x.payload.toString()), payloads([...kept.filter(odd), ...after.filter(odd)]))
      // Time lookups: the first record at or after a time between the runs is the first new one.
      assert.equal(log.offsetForTime(1500), (after[0] as Written).offset)
      assert.equal(log.offsetForTime(2010), (after[10] as Written).offset)
      assert.equal(log.offsetForTime(1050), (before[50] as Written).offset)
      assert.equal(log.topicOffsetForTime('t/0', 1500), 24) // records 0, 4, ..., 92 of the first run: 24
    } finally {
      await log.close()
    }

    // A clean reopen keeps the gap (no new one) and everything reads the same.
    log = await CommitLog.open(options(dir))
    try {
      assert.equal(log.recovery.dirty, false)
      assert.equal(log.recovery.gapBytes, 0)
      assert.equal(log.endOffset, (readAll(log).at(-1) as Written).nextOffset)
      assert.equal(payloads(readAll(log)).length, 155)
      assert.equal(log.offsetForTime(1500), (readAll(log)[95] as Written).offset)
    } finally {
      await log.close()
    }
  } finally {
    await tmp.remove()
  }
})

test('a second dirty recovery leaves a second gap; retention deletes whole segments across gaps', async () => {
  const tmp = await tempDir('clgap2')
  try {
    const dir = tmp.path
    let log = await CommitLog.open(options(dir))
    const a = put(log, 'a', 40, 1000) // segments of 30 and 10 records
    await log.flush()
    await powerLoss(dir, log, (a[39] as Written).nextOffset) // nothing lost, but dirty: a gap
    log = await CommitLog.open(options(dir))
    const b = put(log, 'b', 40, 2000)
    await log.flush()
    await powerLoss(dir, log, (b[34] as Written).nextOffset) // b35..b39 lost
    log = await CommitLog.open(options(dir))
    const c = put(log, 'c', 40, 3000)
    await log.flush()
    try {
      assert.equal(log.recovery.gapBytes, W)
      assert.equal((c[0] as Written).offset, (b[34] as Written).nextOffset + 8 + W)
      assert.deepEqual(payloads(readAll(log)), payloads([...a, ...b.slice(0, 35), ...c]))
      // Gaps are no bytes on disk.
      assert.ok(log.stats().bytesOnDisk < 20_000, `bytesOnDisk ${log.stats().bytesOnDisk} counts no gap`)
    } finally {
      await log.close()
    }
    // The disk cap deletes the oldest segments (a: 2, b: 2) across both gaps; a reader whose
    // offset lies in the second gap loses nothing.
    log = await CommitLog.open(options(dir, { retentionBytes: 6000 }))
    try {
      log.setReader('replica', (c[0] as Written).offset - 10)
      const r = log.enforceRetention()
      assert.equal(r.deletedSegments, 4)
      assert.deepEqual(r.drops, [])
      assert.equal(log.startOffset, (c[0] as Written).offset)
      assert.equal(log.read(0).status, 'truncated')
      assert.equal(log.read(0).nextOffset, log.startOffset)
      assert.deepEqual(payloads(readAll(log)), payloads(c))
      assert.equal(log.readTopic('t/0', 0).status, 'truncated')
    } finally {
      await log.close()
    }
  } finally {
    await tmp.remove()
  }
})

test('replicateAheadBytes 0: a dirty recovery leaves no gap (the old behaviour)', async () => {
  const tmp = await tempDir('clgap0')
  try {
    const dir = tmp.path
    let log = await CommitLog.open(options(dir, { replicateAheadBytes: 0 }))
    const a = put(log, 'a', 30, 1000)
    await log.flush()
    await powerLoss(dir, log, (a[19] as Written).nextOffset)
    log = await CommitLog.open(options(dir, { replicateAheadBytes: 0 }))
    try {
      assert.equal(log.recovery.dirty, true)
      assert.equal(log.recovery.gapBytes, 0)
      assert.equal(log.endOffset, (a[19] as Written).nextOffset)
      const b = put(log, 'b', 1, 2000)
      assert.equal((b[0] as Written).offset, (a[19] as Written).nextOffset, 'the lost offsets are reused')
    } finally {
      await log.close()
    }
  } finally {
    await tmp.remove()
  }
})

test('replicableOffset: written records up to W past durable, else durable; waitForReplicable wakes as writes and fsyncs end', async () => {
  const tmp = await tempDir('clgapw')
  // An fsync that completes only when the test says so: durable stays behind while it is held.
  const held: Array<() => void> = []
  const fdatasync = (_fd: number, cb: (err: Error | null) => void): void => { held.push(() => { cb(null) }) }
  const release = (): void => { for (const f of held.splice(0)) f() }
  const turn = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }
  const log = await CommitLog.open(options(tmp.path, { segmentBytes: 1024 * 1024, replicateAheadBytes: 2000, fdatasync }))
  try {
    let durableCalls = 0
    const first = log.append({ topic: 't', payload: Buffer.alloc(100), qos: 1, retain: false, clientId: 'c' }, () => { durableCalls++ })
    await log.waitForReplicable(0)
    assert.equal(log.replicableOffset, first.nextOffset, 'written, not durable: replicable')
    assert.equal(log.durableOffset, 0)
    assert.equal(durableCalls, 0, 'the durable callback waits for the fsync')
    // More than W written past durable: replicable falls back to durable (a record boundary).
    let end = first.nextOffset
    for (let i = 0; i < 30; i++) end = log.append({ topic: 't', payload: Buffer.alloc(100), qos: 1, retain: false, clientId: 'c' }).nextOffset
    while (log.writtenOffset < end) await turn()
    assert.equal(log.replicableOffset, 0)
    let woke = false
    const waiting = log.waitForReplicable(first.nextOffset).then(() => { woke = true })
    for (let i = 0; i < 5; i++) await turn()
    assert.equal(woke, false, 'held back by the window while the fsync is held')
    while (log.durableOffset < end) { release(); await turn() }
    await waiting
    assert.equal(log.replicableOffset, end)
    assert.equal(durableCalls, 1)
  } finally {
    let closed = false
    const closing = log.close().then(() => { closed = true })
    while (!closed) { release(); await turn() }
    await closing
    await tmp.remove()
  }
})

test('a recovered tail segment is sealed with an end-of-segment marker before the gap', async () => {
  const tmp = await tempDir('clgapm')
  try {
    const dir = tmp.path
    let log = await CommitLog.open(options(dir, { segmentBytes: 1024 * 1024 }))
    const a = put(log, 'a', 10, 1000)
    await log.flush()
    await powerLoss(dir, log, (a[6] as Written).nextOffset)
    const seg = lastSegment(dir)
    log = await CommitLog.open(options(dir, { segmentBytes: 1024 * 1024 }))
    try {
      const bytes = readFileSync(seg)
      assert.equal(bytes.length, (a[6] as Written).nextOffset + 8)
      assert.equal(bytes.readUInt32LE(bytes.length - 8), 0x454f5331)
      assert.equal(bytes.readUInt32LE(bytes.length - 4), 0)
      assert.equal(lastSegment(dir).slice(-24, -4), String((a[6] as Written).nextOffset + 8 + W).padStart(20, '0'))
    } finally {
      await log.close()
    }
  } finally {
    await tmp.remove()
  }
})
