// Topic index tails (topic-index.ts): entries wait in memory per topic and reach their files a
// few topics per append, so at any moment some topics' newest entries are only in memory. A
// checkpoint must then claim as indexed only the log below the oldest such entry; recovery
// rebuilds from there. The crash is simulated by copying the log directory while the log is
// open (what a SIGKILL leaves: the files as written, the dirty marker, no clean close), after a
// periodic checkpoint; the copy is opened and every topic read through its index.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cpSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { CommitLog } from '../../src/commitlog/index.js'
import { silentLogger } from '../../src/log/index.js'
import { tempDir } from '../helpers/net.js'

const TOPICS = 300
const RECORDS = 6_000

function topicOffsets (log: CommitLog, topic: string): number[] {
  const offsets: number[] = []
  let from = 0
  for (let b = log.readTopic(topic, from, { maxRecords: 100 }); b.status === 'ok'; b = log.readTopic(topic, from, { maxRecords: 100 })) {
    for (const r of b.records) offsets.push(r.offset)
    from = b.nextOffset
  }
  return offsets
}

test('a checkpoint taken while topic tails are pending: the crashed copy recovers every topic complete', async () => {
  const tmp = await tempDir('cl-tails')
  const copy = await tempDir('cl-tails-copy')
  try {
    // Records 1 ms apart: tails turn 2 s old and are written while appending; those of the last
    // two seconds, and of topics appended to since, are still in memory.
    let clock = 1_700_000_000_000
    const opts = {
      dir: tmp.path, segmentBytes: 256 * 1024, flushPolicy: 'interval' as const, flushIntervalMs: 2, maxRecordBytes: 1024,
      retentionBytes: 0, retentionMs: 0, log: silentLogger(), now: () => clock++
    }
    const log = await CommitLog.open(opts)
    const expected = new Map<string, number[]>()
    try {
      for (let i = 0; i < RECORDS; i++) {
        // Uneven: a few busy topics (their tails fill and are written at 64), many quiet ones.
        const t = i % 3 === 0 ? i % 5 : (i * 7919) % TOPICS
        const topic = `site/${t}/telemetry`
        const r = log.append({ topic, payload: Buffer.from(String(i)), qos: 1, retain: false, clientId: 'c' })
        const list = expected.get(topic)
        if (list === undefined) expected.set(topic, [r.offset])
        else list.push(r.offset)
      }
      await log.flush()
      // The periodic checkpoint (every 5 s in a running log), now.
      ;(log as unknown as { checkpoint: (sync: boolean) => void }).checkpoint(false)
      cpSync(tmp.path, copy.path, { recursive: true })
    } finally {
      await log.close()
    }
    rmSync(join(copy.path, 'LOCK'))
    const recovered = await CommitLog.open({ ...opts, dir: copy.path })
    try {
      assert.equal(recovered.recovery.dirty, true, 'the copy was taken before a clean close')
      assert.ok(recovered.recovery.scannedFromOffset > 0, 'the checkpoint covered part of the index (not a full rescan)')
      for (const [topic, offsets] of expected) assert.deepEqual(topicOffsets(recovered, topic), offsets, topic)
    } finally {
      await recovered.close()
    }
  } finally {
    await tmp.remove()
    await copy.remove()
  }
})
