// minFsyncGapMs (for flash that wears per flush): fsync rounds start at least that far apart,
// every append still becomes durable and is acked in order, flush() does not wait for the gap,
// and a gap above flushIntervalMs under `interval` is refused. The fsyncs are counted and timed
// by an injected fdatasync (the real one underneath); the control run without a gap shows the
// same load makes far more, closer fsyncs, so the spacing is the option's doing.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { fdatasync } from 'node:fs'
import { CommitLog } from '../../src/commitlog/index.js'
import { isTributaryError } from '../../src/errors/index.js'
import { silentLogger } from '../../src/log/index.js'
import { tempDir } from '../helpers/net.js'

const GAP_MS = 40
// Spacing is measured at the injected fdatasync, a few microseconds after the round started;
// 1 ms of slack covers that, never a missing gap.
const SLACK_MS = 1
const ROUNDS = 12

interface Run { starts: number[], acked: number[] }

async function appendRounds (minFsyncGapMs: number): Promise<Run> {
  const tmp = await tempDir('cl-gap')
  const starts: number[] = []
  const acked: number[] = []
  try {
    const log = await CommitLog.open({
      dir: tmp.path, segmentBytes: 1 << 20, flushPolicy: 'always', flushIntervalMs: 5, minFsyncGapMs, maxRecordBytes: 1024,
      retentionBytes: 0, retentionMs: 0, log: silentLogger(),
      fdatasync: (fd, callback) => { starts.push(performance.now()); fdatasync(fd, callback) }
    })
    try {
      let n = 0
      for (let round = 0; round < ROUNDS; round++) {
        // A few appends per round, a few ms apart: without a gap each round gets its own fsyncs.
        const done: Array<Promise<void>> = []
        for (let i = 0; i < 5; i++) {
          const seq = n++
          done.push(new Promise<void>((resolve, reject) => {
            log.append({ topic: 't/gap', payload: Buffer.from(`m${seq}`), qos: 1, retain: false, clientId: 'c' }, (err) => {
              if (err !== null) { reject(err); return }
              acked.push(seq)
              resolve()
            })
          }))
          await new Promise((resolve) => setTimeout(resolve, 2))
        }
        await Promise.all(done)
        assert.equal(log.durableOffset, log.endOffset)
      }
      // flush() does not wait for the gap: right after an fsync round, one more append and a flush.
      const before = starts.length
      log.append({ topic: 't/gap', payload: Buffer.from('last'), qos: 1, retain: false, clientId: 'c' }, () => { acked.push(n) })
      await log.flush()
      assert.ok(starts.length > before, 'flush() ran an fsync')
      assert.equal(log.durableOffset, log.endOffset)
    } finally {
      await log.close()
    }
  } finally {
    await tmp.remove()
  }
  return { starts, acked }
}

test('minFsyncGapMs spaces fsync rounds; every append is still acked, in order', { timeout: 60_000 }, async () => {
  const spaced = await appendRounds(GAP_MS)
  const control = await appendRounds(0)
  for (const run of [spaced, control]) assert.deepEqual(run.acked, Array.from({ length: ROUNDS * 5 + 1 }, (_, i) => i))
  // The rounds' fsyncs (the last one, flush(), may come early by design).
  const rounds = spaced.starts.slice(0, -1)
  for (let i = 1; i < rounds.length; i++) {
    const gap = rounds[i] - rounds[i - 1]
    assert.ok(gap >= GAP_MS - SLACK_MS, `fsync ${i} started ${gap.toFixed(2)} ms after the previous one (gap ${GAP_MS} ms)`)
  }
  // Without the gap the same load makes more fsyncs, some closer together than the gap.
  assert.ok(control.starts.length > spaced.starts.length, `control ${control.starts.length} fsyncs vs spaced ${spaced.starts.length}`)
  const controlGaps = control.starts.slice(1).map((t, i) => t - control.starts[i])
  assert.ok(controlGaps.some((g) => g < GAP_MS - SLACK_MS), 'the control run had fsyncs closer than the gap')
})

test('minFsyncGapMs above flushIntervalMs is refused under interval, allowed under always', async () => {
  const tmp = await tempDir('cl-gap-config')
  try {
    const options = { dir: tmp.path, segmentBytes: 1 << 20, flushIntervalMs: 5, minFsyncGapMs: 20, maxRecordBytes: 1024, retentionBytes: 0, retentionMs: 0, log: silentLogger() }
    await assert.rejects(CommitLog.open({ ...options, flushPolicy: 'interval' }), (err: unknown) => {
      assert.ok(isTributaryError(err))
      assert.equal(err.code, 'TRIB_ERR_CONFIG_INVALID')
      assert.match(err.message, /minFsyncGapMs/)
      return true
    })
    const log = await CommitLog.open({ ...options, flushPolicy: 'always' })
    await log.close()
  } finally {
    await tmp.remove()
  }
})
