// Commitlog retention: by bytes and by age (injected clock), readers holding segments, counted drops.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import pino from 'pino'
import { Writable } from 'node:stream'
import { CommitLog, type CommitLogOptions } from '../../src/commitlog/index.js'
import { silentLogger } from '../../src/log/index.js'
import { tempDir } from '../helpers/net.js'

function options (dir: string, extra: Partial<CommitLogOptions> = {}): CommitLogOptions {
  return {
    dir, segmentBytes: 4096, flushPolicy: 'interval', flushIntervalMs: 2, maxRecordBytes: 1024,
    retentionBytes: 0, retentionMs: 0, log: silentLogger(), ...extra
  }
}

function fill (log: CommitLog, n: number, from = 0): Array<{ offset: number, next: number }> {
  const out: Array<{ offset: number, next: number }> = []
  for (let i = from; i < from + n; i++) {
    const r = log.append({ topic: `t/${i % 3}`, payload: Buffer.alloc(100, i % 256), qos: 1, retain: false, clientId: 'c' })
    out.push({ offset: r.offset, next: r.nextOffset })
  }
  return out
}

const segmentCount = (dir: string): number => readdirSync(dir).filter((n) => n.endsWith('.log')).length

test('retention by bytes deletes whole oldest segments, never the active one; reads report truncated', async () => {
  const tmp = await tempDir('clret')
  try {
    // Filled without a cap, reopened with one (retention also runs after every roll; see below).
    const first = await CommitLog.open(options(tmp.path))
    fill(first, 400) // ~52 KB in ~14 segments
    await first.close()
    const log = await CommitLog.open(options(tmp.path, { retentionBytes: 10_000 }))
    const before = segmentCount(tmp.path)
    const rep = log.enforceRetention()
    assert.ok(rep.deletedSegments > 0)
    assert.equal(segmentCount(tmp.path), before - rep.deletedSegments)
    assert.ok(log.stats().bytesOnDisk <= 10_000)
    assert.ok(log.stats().bytesOnDisk > 10_000 - 4096, 'deleted no more than needed')
    assert.deepEqual(rep.drops, [])
    // A reader at a deleted offset is told, and where to continue.
    const b = log.read(0)
    assert.equal(b.status, 'truncated')
    assert.equal(b.nextOffset, log.startOffset)
    assert.equal(log.read(b.nextOffset).status, 'ok')
    // A topic read from a deleted topic offset says truncated and gives the first retained one.
    const tb = log.readTopic('t/0', 0)
    assert.equal(tb.status, 'truncated')
    const firstKept = log.readTopic('t/0', tb.nextOffset, { maxRecords: 1 }).records[0]
    assert.ok(firstKept !== undefined && firstKept.offset >= log.startOffset)
    if (tb.nextOffset > 0) assert.ok(log.topicEntry('t/0', tb.nextOffset - 1)!.logOffset < log.startOffset)
    // The active segment survives even a tiny cap.
    await log.close()
    const tiny = await CommitLog.open(options(tmp.path, { retentionBytes: 1 }))
    tiny.enforceRetention()
    assert.equal(segmentCount(tmp.path), 1)
    assert.ok(tiny.startOffset > 0)
    assert.equal(tiny.read(tiny.startOffset).status, 'ok')
    await tiny.close()
  } finally { await tmp.remove() }
})

test('retention by age (injected clock): old segments go, a registered reader keeps what it still needs', async () => {
  const tmp = await tempDir('clret')
  try {
    let clock = 1_000_000
    const log = await CommitLog.open(options(tmp.path, { retentionMs: 60_000, now: () => clock }))
    const old = fill(log, 200) // several segments at t = 1,000,000
    // Reader still at a record in the second segment: age must not delete segments from there on.
    const readerAt = (old[60] as { offset: number }).offset
    log.setReader('bridge', readerAt)
    clock += 120_000
    fill(log, 100, 200) // newer; the rolls run retention
    await log.flush()
    const r1 = log.enforceRetention()
    assert.deepEqual(r1.drops, [])
    assert.ok(log.startOffset > 0, 'the first old segment was deleted')
    assert.ok(log.startOffset <= readerAt, 'the reader\'s segment was kept')
    assert.equal(log.read(readerAt, { maxRecords: 1 }).status, 'ok')
    // Once the reader moves on, the old segments go.
    log.setReader('bridge', log.endOffset)
    const r2 = log.enforceRetention()
    assert.ok(r2.deletedSegments >= 1)
    // Every segment whose newest record is old is gone: only the segment holding the first new
    // record may still hold old ones.
    const firstNew = log.offsetForTime(clock - 60_000)
    assert.ok(log.startOffset <= firstNew && firstNew - log.startOffset < 4096, `start ${log.startOffset}, first new ${firstNew}`)
    assert.ok(log.startOffset > (old[150] as { offset: number }).offset)
    log.removeReader('bridge')
    // New data is younger than 60 s: kept.
    assert.equal(log.enforceRetention().deletedSegments, 0)
    await log.close()
  } finally { await tmp.remove() }
})

test('the bytes cap wins over a reader: the drop is counted per reader and logged at warn', async () => {
  const tmp = await tempDir('clret')
  try {
    const lines: string[] = []
    const sink = new Writable({ write (chunk, _enc, cb) { lines.push(String(chunk)); cb() } })
    const logger = pino({ level: 'warn' }, sink)
    const first = await CommitLog.open(options(tmp.path))
    const recs = fill(first, 400)
    await first.close()
    const log = await CommitLog.open(options(tmp.path, { retentionBytes: 12_000, log: logger }))
    log.setReader('slow', (recs[10] as { offset: number }).offset)
    log.setReader('fast', log.endOffset)
    const rep = log.enforceRetention()
    assert.ok(rep.deletedSegments > 0)
    const lost = recs.filter((r) => r.offset >= (recs[10] as { offset: number }).offset && r.offset < log.startOffset)
    assert.deepEqual(rep.drops, [{ reader: 'slow', records: lost.length, bytes: log.startOffset - (recs[10] as { offset: number }).offset }])
    assert.equal(log.stats().droppedRecords, lost.length)
    await new Promise((resolve) => setImmediate(resolve))
    const warn = lines.map((l) => JSON.parse(l) as { level: number, reader?: string, records?: number }).find((l) => l.reader === 'slow')
    assert.ok(warn !== undefined && warn.level === 40 && warn.records === lost.length)
    await log.close()
  } finally { await tmp.remove() }
})

test('retention runs by itself after a segment roll', async () => {
  const tmp = await tempDir('clret')
  try {
    const log = await CommitLog.open(options(tmp.path, { retentionBytes: 9_000 }))
    for (let k = 0; k < 10; k++) { fill(log, 40); await log.flush() }
    await new Promise((resolve) => setImmediate(resolve))
    assert.ok(log.stats().bytesOnDisk <= 9_000 + 4096, `bytesOnDisk ${log.stats().bytesOnDisk}`)
    assert.ok(log.startOffset > 0)
    await log.close()
  } finally { await tmp.remove() }
})
