// Commitlog: append/read, segment roll, topic and time indexes, durable callbacks, lock, reopen.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { readdirSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { CommitLog, type CommitLogOptions, type FlushPolicy } from '../../src/commitlog/index.js'
import { maxOpenIndexFileDescriptors } from '../../src/commitlog/topic-index.js'
import { isTributaryError } from '../../src/errors/index.js'
import { silentLogger } from '../../src/log/index.js'
import { tempDir, waitFor } from '../helpers/net.js'

function options (dir: string, extra: Partial<CommitLogOptions> = {}): CommitLogOptions {
  return {
    dir, segmentBytes: 4096, flushPolicy: 'interval', flushIntervalMs: 2, maxRecordBytes: 1024,
    retentionBytes: 0, retentionMs: 0, log: silentLogger(), ...extra
  }
}

function rec (i: number, topic = `dev/${i % 5}/temp`): { topic: string, payload: Buffer, qos: 1, retain: boolean, clientId: string } {
  return { topic, payload: Buffer.from(`payload-${i}`), qos: 1, retain: i % 7 === 0, clientId: `client-${i % 3}` }
}

test('append, read back, roll segments and read across them', async () => {
  const tmp = await tempDir('cl')
  try {
    const log = await CommitLog.open(options(tmp.path))
    const offsets: number[] = []
    for (let i = 0; i < 500; i++) offsets.push(log.append(rec(i)).offset)
    await log.flush()
    assert.equal(log.durableOffset, log.endOffset)
    const segs = readdirSync(tmp.path).filter((n) => n.endsWith('.log')).sort()
    assert.ok(segs.length > 3, `expected several segments, got ${segs.length}`)
    assert.match(segs[0] as string, /^0{20}\.log$/)
    assert.equal(log.stats().segments, segs.length)
    // Read everything in small batches across segment boundaries.
    const seen: number[] = []
    let pos = log.startOffset
    while (true) {
      const b = log.read(pos, { maxRecords: 7 })
      if (b.status === 'end') break
      assert.equal(b.status, 'ok')
      for (const r of b.records) {
        const i = seen.length
        assert.equal(r.payload.toString(), `payload-${i}`)
        assert.equal(r.topic, rec(i).topic)
        assert.equal(r.clientId, rec(i).clientId)
        assert.equal(r.retain, rec(i).retain)
        assert.equal(r.qos, 1)
        seen.push(r.offset)
      }
      pos = b.nextOffset
    }
    assert.deepEqual(seen, offsets)
    assert.equal(pos, log.endOffset)
    // Reading from the middle of the log by a record's offset.
    const mid = log.read(offsets[250] as number, { maxRecords: 1 })
    assert.equal(mid.records[0]?.payload.toString(), 'payload-250')
    // maxBytes bounds a batch, but a batch always makes progress.
    assert.equal(log.read(0, { maxBytes: 1 }).records.length, 1)
    await log.close()
  } finally { await tmp.remove() }
})

test('records still in the write buffer are readable at once', async () => {
  const tmp = await tempDir('cl')
  try {
    const log = await CommitLog.open(options(tmp.path))
    const r = log.append(rec(1))
    const b = log.read(r.offset)
    assert.equal(b.records.length, 1)
    assert.equal(b.records[0]?.payload.toString(), 'payload-1')
    // ... but a durable-only reader stops at durableOffset.
    assert.equal(log.read(r.offset, { maxOffset: log.durableOffset }).status, 'end')
    await log.close()
  } finally { await tmp.remove() }
})

test('oversize records are refused with TRIB_ERR_LOG_RECORD_TOO_LARGE and nothing is appended', async () => {
  const tmp = await tempDir('cl')
  try {
    const log = await CommitLog.open(options(tmp.path))
    assert.throws(() => log.append({ topic: 't', payload: Buffer.alloc(2000), qos: 0, retain: false, clientId: 'c' }),
      (err: unknown) => isTributaryError(err, 'TRIB_ERR_LOG_RECORD_TOO_LARGE'))
    assert.equal(log.endOffset, 0)
    await log.close()
  } finally { await tmp.remove() }
})

for (const policy of ['always', 'interval', 'none'] as FlushPolicy[]) {
  test(`durable callbacks fire once each, in append order (flushPolicy ${policy})`, async () => {
    const tmp = await tempDir('cl')
    try {
      const log = await CommitLog.open(options(tmp.path, { flushPolicy: policy, segmentBytes: 64 * 1024 }))
      const order: number[] = []
      const n = 3000
      await new Promise<void>((resolve, reject) => {
        let i = 0
        // Spread appends over several ticks so several group commits happen.
        const burst = (): void => {
          for (let k = 0; k < 250 && i < n; k++, i++) {
            const seq = i
            const r = log.append(rec(seq), (err) => {
              if (err !== null) { reject(err); return }
              if (policy !== 'none') assert.ok(log.durableOffset >= r.nextOffset, 'acked before durable')
              order.push(seq)
              if (order.length === n) resolve()
            })
          }
          if (i < n) setImmediate(burst)
        }
        burst()
      })
      assert.deepEqual(order, Array.from({ length: n }, (_, k) => k))
      await log.close()
    } finally { await tmp.remove() }
  })
}

test('topic index: topicEnd, readTopic from a topic offset, topicOffsetForTime (property)', async () => {
  await fc.assert(fc.asyncProperty(
    fc.array(fc.record({ topic: fc.constantFrom('a', 'b/c', 'dev/1', 'dev/2', 'ünï'), dt: fc.nat({ max: 5 }) }), { minLength: 1, maxLength: 300 }),
    async (items) => {
      const tmp = await tempDir('cl')
      try {
        let clock = 1_000_000
        const log = await CommitLog.open(options(tmp.path, { segmentBytes: 2048, now: () => clock }))
        const expected = new Map<string, Array<{ i: number, ts: number }>>()
        items.forEach((it, i) => {
          clock += it.dt
          const r = log.append({ topic: it.topic, payload: Buffer.from(String(i)), qos: 0, retain: false, clientId: 'x' })
          const list = expected.get(it.topic) ?? []
          assert.equal(r.topicOffset, list.length)
          list.push({ i, ts: r.timestampMs })
          expected.set(it.topic, list)
        })
        const check = (l: CommitLog): void => {
          for (const [topic, list] of expected) {
            assert.equal(l.topicEnd(topic), list.length)
            const from = Math.floor(list.length / 2)
            const b = l.readTopic(topic, from, { maxRecords: 1000 })
            assert.deepEqual(b.records.map((r) => Number(r.payload.toString())), list.slice(from).map((x) => x.i))
            assert.equal(b.nextOffset, list.length)
            for (const probeTs of [list[0]!.ts - 1, list[from]!.ts, list[list.length - 1]!.ts + 1]) {
              const want = list.findIndex((x) => x.ts >= probeTs)
              assert.equal(l.topicOffsetForTime(topic, probeTs), want === -1 ? list.length : want)
            }
          }
          assert.equal(l.topicEnd('never'), 0)
          assert.equal(l.readTopic('never', 0).status, 'end')
        }
        check(log)
        await log.close()
        const again = await CommitLog.open(options(tmp.path, { segmentBytes: 2048, now: () => clock }))
        assert.equal(again.recovery.dirty, false)
        check(again)
        await again.close()
      } finally { await tmp.remove() }
    }), { numRuns: 25 })
})

test('time index: offsetForTime finds the first record at or after a time, across segments', async () => {
  const tmp = await tempDir('cl')
  try {
    let clock = 5_000
    const log = await CommitLog.open(options(tmp.path, { segmentBytes: 8192, now: () => clock }))
    const appended: Array<{ offset: number, ts: number }> = []
    for (let i = 0; i < 2000; i++) {
      if (i % 10 === 0) clock += 3
      const r = log.append(rec(i))
      appended.push({ offset: r.offset, ts: r.timestampMs })
    }
    // An earlier explicit timestamp is clamped: timestamps never go backwards.
    const clamped = log.append({ ...rec(1), timestampMs: 1 })
    assert.equal(clamped.timestampMs, clock)
    appended.push({ offset: clamped.offset, ts: clamped.timestampMs })
    const lookup = (l: CommitLog): void => {
      for (const ts of [0, 5_000, 5_003, 5_004, 5_300, 5_597, clock, clock + 1]) {
        const first = appended.find((a) => a.ts >= ts)
        assert.equal(l.offsetForTime(ts), first === undefined ? l.endOffset : first.offset, `ts ${ts}`)
      }
    }
    lookup(log)
    await log.close()
    const again = await CommitLog.open(options(tmp.path, { segmentBytes: 8192, now: () => clock }))
    lookup(again)
    await again.close()
  } finally { await tmp.remove() }
})

test('waitForData resolves when a record is appended past the offset', async () => {
  const tmp = await tempDir('cl')
  try {
    const log = await CommitLog.open(options(tmp.path))
    let woke = false
    const waiting = log.waitForData(0).then(() => { woke = true })
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(woke, false)
    log.append(rec(0))
    await waiting
    assert.equal(log.read(0).records.length, 1)
    await log.close()
  } finally { await tmp.remove() }
})

test('reopen after a clean close: no recovery scan, offsets continue, appends work', async () => {
  const tmp = await tempDir('cl')
  try {
    const log = await CommitLog.open(options(tmp.path))
    for (let i = 0; i < 300; i++) log.append(rec(i))
    const end = log.endOffset
    await log.close()
    assert.throws(() => log.append(rec(0)), (err: unknown) => isTributaryError(err, 'TRIB_ERR_LOG_CLOSED'))
    const again = await CommitLog.open(options(tmp.path))
    assert.deepEqual(again.recovery, { dirty: false, scannedFromOffset: end, truncatedBytes: 0, recordsRecovered: 0, endOffset: end, gapBytes: 0 })
    const r = again.append(rec(300))
    assert.equal(r.offset, end)
    assert.equal(again.topicEnd(rec(300).topic), 61)
    await again.flush()
    let count = 0
    let pos = again.startOffset
    for (let b = again.read(pos); b.status === 'ok'; b = again.read(pos)) { count += b.records.length; pos = b.nextOffset }
    assert.equal(count, 301)
    await again.close()
  } finally { await tmp.remove() }
})

test('lock: a second open of the same directory is refused with TRIB_ERR_LOG_LOCKED; a dead holder is taken over', async () => {
  const tmp = await tempDir('cl')
  try {
    const log = await CommitLog.open(options(tmp.path))
    await assert.rejects(CommitLog.open(options(tmp.path)), (err: unknown) => isTributaryError(err, 'TRIB_ERR_LOG_LOCKED'))
    await log.close()
    // A lock file left by a process that no longer exists does not block.
    const child = spawn(process.execPath, ['-e', '0'])
    const deadPid = child.pid as number
    await new Promise((resolve) => child.on('exit', resolve))
    const { writeFileSync } = await import('node:fs')
    writeFileSync(`${tmp.path}/LOCK`, String(deadPid))
    const again = await CommitLog.open(options(tmp.path))
    await again.close()
  } finally { await tmp.remove() }
})

test('a failed write fails the pending callbacks with TRIB_ERR_LOG_IO and refuses appends until reopened, leaving no hole', async () => {
  const tmp = await tempDir('cl')
  try {
    const log = await CommitLog.open(options(tmp.path))
    for (let i = 0; i < 10; i++) log.append(rec(i))
    await log.flush()
    const goodEnd = log.endOffset
    // Inject the failure: swap the segment's write fd for a read-only one, so write() fails (EBADF)
    // the way it would with ENOSPC or EIO.
    const { openSync: open, closeSync: close } = await import('node:fs')
    // (The segment writer holds the fd its next write goes to.)
    const internals = log as unknown as { writer: { fd: number } }
    const realFd = internals.writer.fd
    const readOnlyFd = open(`${tmp.path}/${'0'.repeat(20)}.log`, 'r')
    internals.writer.fd = readOnlyFd
    const results: Array<Error | null> = []
    for (let i = 10; i < 15; i++) log.append(rec(i), (err) => { results.push(err) })
    // The failure arrives when the write on the libuv pool completes: wait for it, not a fixed time.
    await waitFor('the 5 failed callbacks', () => results.length === 5)
    assert.equal(results.length, 5)
    for (const err of results) assert.ok(isTributaryError(err, 'TRIB_ERR_LOG_IO'))
    assert.throws(() => log.append(rec(99)), (err: unknown) => isTributaryError(err, 'TRIB_ERR_LOG_IO'))
    assert.equal(log.endOffset, goodEnd)
    assert.equal(log.read(goodEnd).status, 'end')
    await log.close()
    close(readOnlyFd)
    // Reopened: the 10 good records, then appends continue right after them.
    const again = await CommitLog.open(options(tmp.path))
    assert.equal(again.endOffset, goodEnd)
    assert.equal(again.read(0, { maxRecords: 100 }).records.length, 10)
    assert.equal(again.topicEnd(rec(0).topic) + again.topicEnd(rec(1).topic) + again.topicEnd(rec(2).topic) + again.topicEnd(rec(3).topic) + again.topicEnd(rec(4).topic), 10)
    assert.equal(again.append(rec(10)).offset, goodEnd)
    await again.close()
  } finally { await tmp.remove() }
})

test('topic index with more active topics than open index files: every topic complete and in order, before and after reopen', async () => {
  // 1,100 topics > the at most 1,024 index fds kept open (maxOpenIndexFileDescriptors()), 12,000
  // records 1 ms apart (injected clock): topic tails are written while appending as they turn
  // 2 s old (topic-index.ts, a few per append, reopening evicted fds), the rest at reads and at
  // close.
  const tmp = await tempDir('cl')
  try {
    let clock = 1_700_000_000_000
    const opts = options(tmp.path, { segmentBytes: 256 * 1024, now: () => clock++ })
    const log = await CommitLog.open(opts)
    const topics = 1_100
    assert.ok(topics > maxOpenIndexFileDescriptors())
    const expected: number[][] = Array.from({ length: topics }, () => [])
    for (let i = 0; i < 12_000; i++) {
      const t = (i * 37 + (i >> 7)) % topics
      expected[t]!.push(i)
      log.append({ topic: `site/${t}/telemetry`, payload: Buffer.from(String(i)), qos: 1, retain: false, clientId: 'c' })
      // A count check now and then while appending (a count in memory: no tail is written for it).
      if (i % 3001 === 3000) assert.equal(log.topicEnd(`site/${t}/telemetry`), expected[t]!.length)
    }
    const check = (l: CommitLog): void => {
      for (let t = 0; t < topics; t++) {
        const topic = `site/${t}/telemetry`
        assert.equal(l.topicEnd(topic), expected[t]!.length, topic)
        const got: number[] = []
        let from = 0
        while (true) {
          const b = l.readTopic(topic, from, { maxRecords: 25 })
          if (b.status === 'end') break
          for (const r of b.records) got.push(Number(r.payload.toString()))
          from = b.nextOffset
        }
        assert.deepEqual(got, expected[t], topic)
      }
    }
    check(log)
    await log.close()
    const again = await CommitLog.open(opts)
    assert.equal(again.recovery.dirty, false)
    check(again)
    await again.close()
  } finally { await tmp.remove() }
})
