// Commitlog recovery: torn tails at every byte position (property), garbage after the tail,
// deleted index files, a missing checkpoint.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { appendFileSync, cpSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CommitLog, type CommitLogOptions } from '../../src/commitlog/index.js'
import { writeCheckpoint } from '../../src/commitlog/checkpoint.js'
import { silentLogger } from '../../src/log/index.js'
import { tempDir } from '../helpers/net.js'

function options (dir: string, extra: Partial<CommitLogOptions> = {}): CommitLogOptions {
  return {
    dir, segmentBytes: 4096, flushPolicy: 'interval', flushIntervalMs: 2, maxRecordBytes: 1024,
    retentionBytes: 0, retentionMs: 0, log: silentLogger(), ...extra
  }
}

// Simulates what a crash leaves: closes normally, then puts back the dirty marker and a stale
// checkpoint. (The real SIGKILL test is test/fault/commitlog-crash.test.ts.)
async function writeAndCrash (dir: string, n: number, extra: Partial<CommitLogOptions> = {}): Promise<{ offsets: number[], ends: number[] }> {
  const log = await CommitLog.open(options(dir, extra))
  const offsets: number[] = []
  const ends: number[] = []
  for (let i = 0; i < n; i++) {
    const r = log.append({ topic: `t/${i % 4}`, payload: Buffer.from(`m${i}`), qos: 1, retain: false, clientId: 'c' })
    offsets.push(r.offset)
    ends.push(r.nextOffset)
  }
  await log.close()
  // As after a SIGKILL: the dirty marker is there and the last checkpoint is older than the tail.
  writeFileSync(join(dir, 'DIRTY'), 'x')
  const at = ends[Math.floor(n * 0.8)] as number
  writeCheckpoint(join(dir, 'checkpoint'), { durableOffset: at, indexedOffset: at, writtenAtMs: 0 }, false)
  return { offsets, ends }
}

function readAll (log: CommitLog): string[] {
  const out: string[] = []
  let pos = log.startOffset
  for (let b = log.read(pos); b.status === 'ok'; b = log.read(pos)) {
    for (const r of b.records) out.push(r.payload.toString())
    pos = b.nextOffset
  }
  return out
}

function lastSegment (dir: string): string {
  return join(dir, readdirSync(dir).filter((n) => n.endsWith('.log')).sort().at(-1) as string)
}

test('torn tail: truncating the last segment at any byte keeps every whole record before it (property)', async () => {
  const tmp = await tempDir('clrec')
  try {
    // A pristine crashed directory (segments, indexes, checkpoint, dirty marker), copied per run.
    const pristineDir = join(tmp.path, 'pristine')
    const { ends } = await writeAndCrash(pristineDir, 120)
    const segName = lastSegment(pristineDir).slice(pristineDir.length + 1)
    const base = Number(segName.slice(0, 20))
    const size = statSync(join(pristineDir, segName)).size
    let run = 0
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: size - 1 }), async (cut) => {
      const dir = join(tmp.path, `run-${run++}`)
      cpSync(pristineDir, dir, { recursive: true })
      truncateSync(join(dir, segName), cut)
      const log = await CommitLog.open(options(dir))
      try {
        const cutGlobal = base + cut
        const whole = ends.filter((e) => e <= cutGlobal).length
        const expectedEnd = Math.max(whole === 0 ? 0 : ends[whole - 1] as number, base)
        assert.equal(log.recovery.dirty, true)
        assert.equal(log.endOffset, expectedEnd)
        assert.equal(log.recovery.truncatedBytes, cutGlobal - expectedEnd)
        assert.deepEqual(readAll(log), Array.from({ length: whole }, (_, i) => `m${i}`))
        // Topic index agrees with the log after recovery (entries past the cut were trimmed).
        let total = 0
        for (let t = 0; t < 4; t++) total += log.topicEnd(`t/${t}`)
        assert.equal(total, whole)
        // Appends continue right after the last whole record: no hole.
        const r = log.append({ topic: 't/0', payload: Buffer.from('after'), qos: 1, retain: false, clientId: 'c' })
        assert.equal(r.offset, expectedEnd)
        assert.equal(log.readTopic('t/0', log.topicEnd('t/0') - 1).records[0]?.payload.toString(), 'after')
      } finally {
        await log.close()
        rmSync(dir, { recursive: true, force: true })
      }
    }), { numRuns: 40 })
  } finally { await tmp.remove() }
})

test('garbage appended to the last segment is cut off; all records survive', async () => {
  const tmp = await tempDir('clrec')
  try {
    await writeAndCrash(tmp.path, 50)
    const seg = lastSegment(tmp.path)
    const before = statSync(seg).size
    appendFileSync(seg, Buffer.from('this is not a record, it is garbage from a torn page write'))
    const log = await CommitLog.open(options(tmp.path))
    assert.equal(log.recovery.dirty, true)
    assert.equal(log.recovery.truncatedBytes, 58)
    assert.equal(statSync(seg).size, before)
    assert.deepEqual(readAll(log), Array.from({ length: 50 }, (_, i) => `m${i}`))
    await log.close()
    // Zero-filled tail (file extended but data never written) is cut the same way.
    appendFileSync(seg, Buffer.alloc(4096))
    const again = await CommitLog.open(options(tmp.path))
    assert.equal(again.recovery.truncatedBytes, 4096)
    assert.equal(readAll(again).length, 50)
    await again.close()
  } finally { await tmp.remove() }
})

test('a corrupt record in an older segment cuts the log there and drops later segments', async () => {
  const tmp = await tempDir('clrec')
  try {
    await writeAndCrash(tmp.path, 400)
    rmSync(join(tmp.path, 'checkpoint')) // no checkpoint: scan from the oldest segment
    const segs = readdirSync(tmp.path).filter((n) => n.endsWith('.log')).sort()
    assert.ok(segs.length >= 3)
    const victim = join(tmp.path, segs[1] as string)
    const fd = (await import('node:fs')).openSync(victim, 'r+')
    ;(await import('node:fs')).writeSync(fd, Buffer.from([0xff]), 0, 1, 100)
    ;(await import('node:fs')).closeSync(fd)
    const log = await CommitLog.open(options(tmp.path))
    const msgs = readAll(log)
    assert.ok(msgs.length > 0 && msgs.length < 400)
    assert.deepEqual(msgs, Array.from({ length: msgs.length }, (_, i) => `m${i}`))
    assert.equal(readdirSync(tmp.path).filter((n) => n.endsWith('.log')).length, 2)
    await log.close()
  } finally { await tmp.remove() }
})

test('deleted index files are rebuilt from the log (topic index and time index)', async () => {
  const tmp = await tempDir('clrec')
  try {
    let clock = 10_000
    const log = await CommitLog.open(options(tmp.path, { now: () => clock }))
    const firstOfTs = new Map<number, number>()
    for (let i = 0; i < 300; i++) {
      if (i % 30 === 0) clock += 10
      const r = log.append({ topic: `t/${i % 4}`, payload: Buffer.from(`m${i}`), qos: 1, retain: false, clientId: 'c' })
      if (!firstOfTs.has(r.timestampMs)) firstOfTs.set(r.timestampMs, r.offset)
    }
    await log.close()
    rmSync(join(tmp.path, 'index'), { recursive: true })
    for (const n of readdirSync(tmp.path)) if (n.endsWith('.timeindex')) rmSync(join(tmp.path, n))
    const again = await CommitLog.open(options(tmp.path, { now: () => clock }))
    assert.equal(again.recovery.recordsRecovered, 300)
    for (let t = 0; t < 4; t++) {
      assert.equal(again.topicEnd(`t/${t}`), 75)
      const b = again.readTopic(`t/${t}`, 70)
      assert.deepEqual(b.records.map((r) => r.payload.toString()), [70, 71, 72, 73, 74].map((k) => `m${k * 4 + t}`))
    }
    for (const [ts, offset] of firstOfTs) assert.equal(again.offsetForTime(ts), offset)
    await again.close()
    // Only one topic's file missing: also detected and rebuilt.
    rmSync(join(tmp.path, 'index', '2.tidx'))
    const third = await CommitLog.open(options(tmp.path, { now: () => clock }))
    assert.equal(third.topicEnd('t/2'), 75)
    assert.equal(third.readTopic('t/2', 0).records.length, 75)
    await third.close()
  } finally { await tmp.remove() }
})

test('a segment that ends with its end-of-segment marker and no successor: the next segment is created', async () => {
  const tmp = await tempDir('clrec')
  try {
    await writeAndCrash(tmp.path, 200)
    const segs = readdirSync(tmp.path).filter((n) => n.endsWith('.log')).sort()
    // Remove the (small) active segment: the previous one is sealed and nothing follows it.
    const last = segs.at(-1) as string
    const lastBase = Number(last.slice(0, 20))
    const lastRecords = statSync(join(tmp.path, last)).size
    rmSync(join(tmp.path, last))
    truncateSync(join(tmp.path, 'checkpoint'), 0)
    const log = await CommitLog.open(options(tmp.path))
    assert.equal(log.endOffset, lastBase)
    const r = log.append({ topic: 'x', payload: Buffer.from('y'), qos: 0, retain: false, clientId: 'c' })
    assert.equal(r.offset, lastBase)
    assert.ok(lastRecords > 0)
    await log.close()
  } finally { await tmp.remove() }
})
