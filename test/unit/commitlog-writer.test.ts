// Commitlog write path with writes on the libuv pool (src/commitlog/writer.ts): durable callbacks
// only after the bytes are in the file, reads of records that are still in flight or queued, the
// synchronous backpressure path, and write failures while several buffers are pending.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { closeSync, constants, fstatSync, open as openAsync, openSync, readSync } from 'node:fs'
import { CommitLog, type CommitLogOptions } from '../../src/commitlog/index.js'
import { isTributaryError } from '../../src/errors/index.js'
import { silentLogger } from '../../src/log/index.js'
import { tempDir, waitFor } from '../helpers/net.js'

function options (dir: string, extra: Partial<CommitLogOptions> = {}): CommitLogOptions {
  return {
    dir, segmentBytes: 64 * 1024 * 1024, flushPolicy: 'interval', flushIntervalMs: 2, maxRecordBytes: 128 * 1024,
    retentionBytes: 0, retentionMs: 0, log: silentLogger(), ...extra
  }
}

// Payload i: 40 KiB whose bytes identify the record, so a misplaced or stale byte is caught.
function payload (i: number, bytes = 40 * 1024): Buffer {
  const b = Buffer.alloc(bytes)
  for (let k = 0; k < bytes; k += 4) b.writeUInt32LE((i * 2654435761 + k) >>> 0, k)
  return b
}

function rec (i: number, bytes?: number): { topic: string, payload: Buffer, qos: 1, retain: boolean, clientId: string } {
  return { topic: `dev/${i % 3}/data`, payload: payload(i, bytes), qos: 1, retain: false, clientId: 'w' }
}

const SEGMENT0 = `${'0'.repeat(20)}.log`

// Occupies every libuv pool thread (opening a FIFO for reading blocks until a writer opens it),
// so a write handed to the pool stays "in flight" until unblock(): deterministic, no timing.
function blockPool (dir: string): () => void {
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4)
  const fifos: string[] = []
  for (let i = 0; i < threads; i++) {
    const path = `${dir}/pool-block-${i}`
    execFileSync('mkfifo', [path])
    fifos.push(path)
    openAsync(path, 'r', (err, fd) => { if (err === null) closeSync(fd) })
  }
  return () => {
    for (const path of fifos) {
      // Retries until the blocked reader's open is there (it may not have started yet).
      for (;;) {
        try { closeSync(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK)); break } catch { /* ENXIO: no reader yet */ }
      }
    }
  }
}

test('flushPolicy none: a durable callback fires only once its bytes are in the segment file', async () => {
  const tmp = await tempDir('clw')
  try {
    const log = await CommitLog.open(options(tmp.path, { flushPolicy: 'none' }))
    const fd = openSync(`${tmp.path}/${SEGMENT0}`, 'r') // an independent handle: sees the file only
    const n = 200
    let checked = 0
    await new Promise<void>((resolve, reject) => {
      for (let i = 0; i < n; i++) {
        const r = log.append(rec(i, 1000), (err) => {
          if (err !== null) { reject(err); return }
          try {
            assert.ok(log.writtenOffset >= r.nextOffset, 'acknowledged before the write completed')
            assert.ok(fstatSync(fd).size >= r.nextOffset, 'acknowledged before written')
            const b = Buffer.alloc(1000)
            readSync(fd, b, 0, 1000, r.nextOffset - 1000)
            assert.deepEqual(b, payload(i, 1000))
          } catch (e) { reject(e); return }
          if (++checked === n) resolve()
        })
      }
    })
    closeSync(fd)
    await log.close()
  } finally { await tmp.remove() }
})

test('reads see records still queued or in flight, across the synchronous backpressure path', async () => {
  const tmp = await tempDir('clw')
  try {
    const log = await CommitLog.open(options(tmp.path))
    // 200 x 40 KiB = 8 MiB in one synchronous burst: more than all write buffers hold, so buffers
    // are queued for the pool and then drained synchronously, which must also write the chunk
    // the pool has not written yet (the pool is blocked here, so that chunk is surely pending).
    const unblock = blockPool(tmp.path)
    const offsets: number[] = []
    try {
      for (let i = 0; i < 200; i++) offsets.push(log.append(rec(i)).offset)
    } catch (err) { unblock(); throw err }
    const check = (from: number, to: number): void => {
      let pos = offsets[from] as number
      let i = from
      while (i < to) {
        const b = log.read(pos, { maxRecords: 50, maxBytes: 4 * 1024 * 1024 })
        assert.equal(b.status, 'ok')
        for (const r of b.records) {
          assert.equal(r.offset, offsets[i])
          assert.deepEqual(r.payload, payload(i), `record ${i}`)
          i++
        }
        pos = b.nextOffset
      }
    }
    try { check(0, 200) } finally { unblock() }
    // Let one loop turn hand a buffer to the pool, then append and read again while it may be
    // in flight.
    await new Promise((resolve) => setImmediate(resolve))
    for (let i = 200; i < 260; i++) offsets.push(log.append(rec(i)).offset)
    assert.ok(log.writtenOffset <= log.endOffset)
    check(150, 260)
    const t = log.readTopic('dev/1/data', 0, { maxRecords: 1000, maxBytes: 64 * 1024 * 1024 })
    assert.equal(t.records.length, 87)
    t.records.forEach((r, k) => { assert.deepEqual(r.payload, payload(3 * k + 1)) })
    await log.flush()
    assert.equal(log.durableOffset, log.endOffset)
    const end = log.endOffset
    await log.close()
    const again = await CommitLog.open(options(tmp.path))
    assert.equal(again.recovery.dirty, false)
    assert.equal(again.endOffset, end)
    const all = again.read(0, { maxRecords: 1000, maxBytes: 64 * 1024 * 1024 })
    assert.equal(all.records.length, 260)
    all.records.forEach((r, i) => { assert.deepEqual(r.payload, payload(i)) })
    await again.close()
  } finally { await tmp.remove() }
})

test('backpressure: with the pool stuck, appends continue by writing past the in-flight chunk; all of it lands', async () => {
  const tmp = await tempDir('clw')
  try {
    const log = await CommitLog.open(options(tmp.path, { flushPolicy: 'none' }))
    const unblock = blockPool(tmp.path)
    const acked: number[] = []
    try {
      // 8 MiB in one burst while the pool cannot run the first write: the buffers run out and
      // the rest is written synchronously behind the chunk in flight.
      for (let i = 0; i < 200; i++) log.append(rec(i), (err) => { if (err === null) acked.push(i) })
      await new Promise((resolve) => setImmediate(resolve))
      // Nothing counts as written (nor is acknowledged) before the in-flight chunk is.
      assert.equal(log.writtenOffset, 0)
      assert.equal(acked.length, 0)
    } finally { unblock() }
    await waitFor('all callbacks', () => acked.length === 200)
    assert.deepEqual(acked, Array.from({ length: 200 }, (_, k) => k))
    assert.equal(log.writtenOffset, log.endOffset)
    const end = log.endOffset
    await log.close()
    const again = await CommitLog.open(options(tmp.path))
    assert.equal(again.endOffset, end)
    const all = again.read(0, { maxRecords: 1000, maxBytes: 64 * 1024 * 1024 })
    assert.equal(all.records.length, 200)
    all.records.forEach((r, i) => { assert.deepEqual(r.payload, payload(i)) })
    await again.close()
  } finally { await tmp.remove() }
})

test('durable callbacks stay in order and after their fsync while segments roll under async writes', async () => {
  const tmp = await tempDir('clw')
  try {
    // 1 MiB segments and 40 KiB records: a roll every ~25 records, the old segment's tail still
    // in flight when the next segment starts.
    const log = await CommitLog.open(options(tmp.path, { segmentBytes: 1024 * 1024 }))
    const n = 300
    const order: number[] = []
    await new Promise<void>((resolve, reject) => {
      let i = 0
      const burst = (): void => {
        for (let k = 0; k < 40 && i < n; k++, i++) {
          const seq = i
          const r = log.append(rec(seq), (err) => {
            if (err !== null) { reject(err); return }
            if (log.durableOffset < r.nextOffset) { reject(new Error(`record ${seq} acknowledged before durable`)); return }
            order.push(seq)
            if (order.length === n) resolve()
          })
        }
        if (i < n) setImmediate(burst)
      }
      burst()
    })
    assert.deepEqual(order, Array.from({ length: n }, (_, k) => k))
    assert.ok(log.stats().segments >= 10)
    await log.close()
    const again = await CommitLog.open(options(tmp.path, { segmentBytes: 1024 * 1024 }))
    let pos = 0
    let i = 0
    for (;;) {
      const b = again.read(pos, { maxRecords: 100, maxBytes: 16 * 1024 * 1024 })
      if (b.status !== 'ok') break
      for (const r of b.records) assert.deepEqual(r.payload, payload(i++))
      pos = b.nextOffset
    }
    assert.equal(i, n)
    await again.close()
  } finally { await tmp.remove() }
})

test('a write failure with several buffers pending fails every unwritten record and leaves no hole', async () => {
  const tmp = await tempDir('clw')
  try {
    const log = await CommitLog.open(options(tmp.path))
    for (let i = 0; i < 5; i++) log.append(rec(i))
    await log.flush()
    const goodEnd = log.endOffset
    // Inject the failure as in commitlog.test.ts: the writer's fd becomes read-only (EBADF, like
    // ENOSPC or EIO), both for the writes on the pool and for the synchronous drain.
    const internals = log as unknown as { writer: { fd: number } }
    const readOnlyFd = openSync(`${tmp.path}/${SEGMENT0}`, 'r')
    internals.writer.fd = readOnlyFd
    const results: Array<Error | null> = []
    let appended = 0
    let thrown: unknown = null
    try {
      for (let i = 5; i < 205; i++) { log.append(rec(i), (err) => { results.push(err) }); appended++ }
    } catch (err) { thrown = err }
    // 8 MiB in one burst exhausts the buffers: the synchronous drain fails inside append().
    assert.ok(isTributaryError(thrown, 'TRIB_ERR_LOG_IO'), `append should throw, got ${String(thrown)}`)
    // Callbacks fail on the next loop turn; the write still on the pool fails later.
    await waitFor('every failed callback', () => results.length === appended)
    assert.equal(results.length, appended)
    for (const err of results) assert.ok(isTributaryError(err, 'TRIB_ERR_LOG_IO'))
    assert.equal(log.endOffset, goodEnd)
    assert.equal(log.read(goodEnd).status, 'end')
    assert.throws(() => log.append(rec(0)), (err: unknown) => isTributaryError(err, 'TRIB_ERR_LOG_IO'))
    await log.close()
    closeSync(readOnlyFd)
    const again = await CommitLog.open(options(tmp.path))
    assert.equal(again.endOffset, goodEnd)
    const all = again.read(0, { maxRecords: 100, maxBytes: 64 * 1024 * 1024 })
    assert.equal(all.records.length, 5)
    assert.equal(again.append(rec(5)).offset, goodEnd)
    await again.close()
  } finally { await tmp.remove() }
})
