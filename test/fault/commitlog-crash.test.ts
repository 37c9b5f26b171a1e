// Real crash: a child process appends under flushPolicy interval and reports each durable
// sequence number; we SIGKILL it mid-stream and reopen the log: every sequence number reported
// durable is present, in order, with no gaps before it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { CommitLog } from '../../src/commitlog/index.js'
import { silentLogger } from '../../src/log/index.js'
import { tempDir, waitFor } from '../helpers/net.js'

const child = fileURLToPath(new URL('./commitlog-crash-child.ts', import.meta.url))

for (const round of [1, 2]) {
  test(`SIGKILL mid-stream loses nothing reported durable (round ${round})`, async () => {
    const tmp = await tempDir('clcrash')
    let maxDurable = -1
    let lastRecovery = null as unknown
    try {
      // Two crashes into the same directory: recovery after recovery.
      for (let crash = 0; crash < 2; crash++) {
        let out = ''
        const proc = spawn(process.execPath, ['--import', 'tsx', child, tmp.path], { stdio: ['ignore', 'pipe', 'inherit'] })
        try {
          proc.stdout.setEncoding('utf8')
          proc.stdout.on('data', (d: string) => { out += d })
          const target = 3000 + round * 2000
          await waitFor('durable acks from the child', () => out.split('\n').length > target, 30_000)
          proc.kill('SIGKILL')
          await new Promise((resolve) => proc.once('exit', resolve))
        } finally {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
        }
        // Only whole lines count (a line cut by the kill was not fully reported).
        const lines = out.split('\n')
        lines.pop()
        const reported = lines.filter((l) => l !== 'ready').map(Number)
        assert.ok(reported.length > 1000)
        // Callbacks came in order.
        for (let i = 1; i < reported.length; i++) assert.equal(reported[i], (reported[i - 1] as number) + 1)
        maxDurable = reported.at(-1) as number

        const log = await CommitLog.open({
          dir: tmp.path, segmentBytes: 256 * 1024, flushPolicy: 'interval', flushIntervalMs: 5, maxRecordBytes: 4096,
          retentionBytes: 0, retentionMs: 0, log: silentLogger()
        })
        try {
          assert.equal(log.recovery.dirty, true)
          lastRecovery = log.recovery
          // Each child run numbers from 0: find this run's records after the previous runs'.
          const runs: number[][] = [[]]
          const byTopic = new Map<string, number[]>()
          let pos = log.startOffset
          for (let b = log.read(pos); b.status === 'ok'; b = log.read(pos)) {
            for (const r of b.records) {
              const offsets = byTopic.get(r.topic)
              if (offsets === undefined) byTopic.set(r.topic, [r.offset])
              else offsets.push(r.offset)
              const n = Number(r.payload.toString().slice(4))
              if (n === 0 && (runs.at(-1) as number[]).length > 0) runs.push([])
              ;(runs.at(-1) as number[]).push(n)
            }
            pos = b.nextOffset
          }
          assert.equal(runs.length, crash + 1, 'one run of records per child process')
          const mine = runs.at(-1) as number[]
          // No gaps, in order, and everything reported durable is there.
          for (let i = 0; i < mine.length; i++) assert.equal(mine[i], i)
          assert.ok(mine.length > maxDurable, `durable seq ${maxDurable} missing: log has ${mine.length} records of this run`)
          // The topic index agrees: each of the 50 topics has its share, and reading a topic
          // through its index gives exactly its records in log order (entries written before
          // the crash up to the checkpoint's indexedOffset, rebuilt after it).
          let total = 0
          for (let t = 0; t < 50; t++) total += log.topicEnd(`dev/${t}/seq`)
          assert.equal(total, runs.reduce((a, r) => a + r.length, 0))
          for (let t = 0; t < 50; t++) {
            const topic = `dev/${t}/seq`
            const inLog = byTopic.get(topic) ?? []
            const viaIndex: number[] = []
            let from = 0
            for (let b = log.readTopic(topic, from, { maxRecords: 500 }); b.status === 'ok'; b = log.readTopic(topic, from, { maxRecords: 500 })) {
              for (const r of b.records) viaIndex.push(r.offset)
              from = b.nextOffset
            }
            assert.deepEqual(viaIndex, inLog, `${topic}: index entries match the log`)
          }
        } finally {
          await log.close()
        }
      }
    } finally {
      await tmp.remove()
    }
    void lastRecovery
  })
}
