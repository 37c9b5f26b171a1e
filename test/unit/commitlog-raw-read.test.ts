// Raw reads (src/commitlog/raw-read.ts): the bridge's hot path ships the log's bytes as they are,
// so a raw read must hand over exactly the frames `read()` decodes, stop where it must (maxOffset,
// segment end, budget), report retention and refuse corruption.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { openSync, writeSync, closeSync } from 'node:fs'
import { join } from 'node:path'
import { CommitLog, type CommitLogOptions } from '../../src/commitlog/index.js'
import { decodeRecord } from '../../src/commitlog/format.js'
import { newRawRead, rawFrameLength, readRaw, type RawReadLimits } from '../../src/commitlog/raw-read.js'
import { isTributaryError } from '../../src/errors/index.js'
import { silentLogger } from '../../src/log/index.js'
import { tempDir } from '../helpers/net.js'

function options (dir: string, extra: Partial<CommitLogOptions> = {}): CommitLogOptions {
  return { dir, segmentBytes: 4096, flushPolicy: 'interval', flushIntervalMs: 2, maxRecordBytes: 1024, retentionBytes: 0, retentionMs: 0, log: silentLogger(), ...extra }
}

// A fresh log in a temp dir for `fn`, closed and removed afterwards.
async function withLog (name: string, extra: Partial<CommitLogOptions>, fn: (log: CommitLog, dir: string) => Promise<void>): Promise<void> {
  const tmp = await tempDir(name)
  try {
    const log = await CommitLog.open(options(tmp.path, extra))
    try { await fn(log, tmp.path) } finally { await log.close() }
  } finally {
    await tmp.remove()
  }
}

// Everything from `from` by raw reads of at most `maxBytes`/`maxRecords`, decoded for comparison.
function rawAll (log: CommitLog, from: number, maxBytes: number, maxRecords: number, maxOffset: number): Array<{ offset: number, nextOffset: number, topic: string, payload: string, qos: number, retain: boolean, clientId: string, ts: number }> {
  const out: Array<{ offset: number, nextOffset: number, topic: string, payload: string, qos: number, retain: boolean, clientId: string, ts: number }> = []
  const r = newRawRead()
  const limits: RawReadLimits = { maxBytes, maxRecords, maxOffset, maxRecordBytes: 1024 }
  let pos = from
  for (let guard = 0; guard < 100_000; guard++) {
    let buf = Buffer.alloc(16 + maxBytes)
    limits.maxBytes = maxBytes
    readRaw(log, pos, buf, 16, limits, r)
    if (r.status === 'short') {
      assert.ok(r.needBytes > maxBytes)
      limits.maxBytes = r.needBytes
      buf = Buffer.alloc(16 + r.needBytes)
      readRaw(log, pos, buf, 16, limits, r)
      assert.equal(r.records, 1, 'a re-read with the needed room returns that record')
    }
    if (r.status === 'end') return out
    assert.equal(r.status, 'ok')
    assert.equal(r.firstOffset, pos)
    assert.ok(r.records <= maxRecords)
    let p = r.start
    let n = 0
    while (p < r.end) {
      const d = decodeRecord(buf, p)
      const len = rawFrameLength(buf, p)
      out.push({ offset: pos + (p - r.start), nextOffset: pos + (p - r.start) + len, topic: d.topic, payload: d.payload.toString(), qos: d.qos, retain: d.retain, clientId: d.clientId, ts: d.timestampMs })
      p += len
      n++
    }
    assert.equal(n, r.records)
    assert.ok(r.nextOffset > pos, 'progress')
    pos = r.nextOffset
  }
  throw new Error('no end')
}

test('raw reads hand over exactly the records read() decodes, across segments, under any budget (property)', async () => {
  await withLog('raw-prop', {}, async (log, dir) => {
  for (let i = 0; i < 400; i++) {
    log.append({ topic: `dev/${i % 7}/t`, payload: Buffer.alloc((i * 37) % 700, i & 0xff), qos: (i % 3) as 0 | 1 | 2, retain: i % 5 === 0, clientId: `c${i % 4}` })
  }
  await log.flush()
  const expected: Array<{ offset: number, nextOffset: number, topic: string, payload: string, qos: number, retain: boolean, clientId: string, ts: number }> = []
  for (let pos = log.startOffset; ;) {
    const b = log.read(pos, { maxRecords: 50 })
    if (b.status === 'end') break
    for (const r of b.records) expected.push({ offset: r.offset, nextOffset: r.nextOffset, topic: r.topic, payload: r.payload.toString(), qos: r.qos, retain: r.retain, clientId: r.clientId, ts: r.timestampMs })
    pos = b.nextOffset
  }
  assert.ok(log.stats().segments > 10)
  fc.assert(fc.property(fc.integer({ min: 30, max: 5000 }), fc.integer({ min: 1, max: 500 }), fc.integer({ min: 0, max: expected.length - 1 }), (maxBytes, maxRecords, firstIdx) => {
    const from = expected[firstIdx].offset
    const got = rawAll(log, from, maxBytes, maxRecords, log.durableOffset)
    assert.deepEqual(got, expected.slice(firstIdx))
  }), { numRuns: 60 })
  })
})

test('a raw read stops at maxOffset: records past the durable offset are not handed over', async () => {
  await withLog('raw-max', { segmentBytes: 1024 * 1024 }, async (log, dir) => {
  const offsets: number[] = []
  for (let i = 0; i < 20; i++) offsets.push(log.append({ topic: 't', payload: Buffer.from(`m${i}`), qos: 1, retain: false, clientId: 'c' }).offset)
  const stop = offsets[12]
  const got = rawAll(log, 0, 4096, 1000, stop)
  assert.equal(got.length, 12)
  assert.equal(got[11].nextOffset, stop)
  const r = readRaw(log, stop, Buffer.alloc(100), 0, { maxBytes: 100, maxRecords: 10, maxOffset: stop, maxRecordBytes: 1024 }, newRawRead())
  assert.equal(r.status, 'end')
  })
})

test('a raw read of an offset deleted by retention says truncated and where the log starts', async () => {
  await withLog('raw-trunc', { retentionBytes: 8192 }, async (log, dir) => {
  for (let i = 0; i < 300; i++) log.append({ topic: 't', payload: Buffer.alloc(100, 1), qos: 1, retain: false, clientId: 'c' })
  await log.flush()
  log.enforceRetention()
  assert.ok(log.startOffset > 0)
  const r = readRaw(log, 0, Buffer.alloc(4096), 0, { maxBytes: 4096, maxRecords: 10, maxOffset: log.durableOffset, maxRecordBytes: 1024 }, newRawRead())
  assert.equal(r.status, 'truncated')
  assert.equal(r.nextOffset, log.startOffset)
  })
})

test('a corrupt record is refused (TRIB_ERR_LOG_CORRUPT), after the good records before it', async () => {
  await withLog('raw-bad', { segmentBytes: 1024 * 1024 }, async (log, dir) => {
  const offsets: number[] = []
  for (let i = 0; i < 10; i++) offsets.push(log.append({ topic: 't', payload: Buffer.from(`message ${i}`), qos: 1, retain: false, clientId: 'c' }).offset)
  await log.flush()
  // Flip a payload byte of record 5 on disk: its CRC no longer matches.
  const fd = openSync(join(dir, '00000000000000000000.log'), 'r+')
  writeSync(fd, Buffer.from('X'), 0, 1, offsets[5] + 29 + 1 + 1 + 2)
  closeSync(fd)
  const limits = { maxBytes: 4096, maxRecords: 100, maxOffset: log.durableOffset, maxRecordBytes: 1024 }
  const r = readRaw(log, 0, Buffer.alloc(4096), 0, limits, newRawRead())
  assert.equal(r.status, 'ok')
  assert.equal(r.records, 5)
  assert.equal(r.nextOffset, offsets[5])
  assert.throws(() => readRaw(log, offsets[5], Buffer.alloc(4096), 0, limits, newRawRead()), (err: unknown) => isTributaryError(err, 'TRIB_ERR_LOG_CORRUPT'))
  })
})
