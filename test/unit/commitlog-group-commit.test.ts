// Group commit under the `interval` policy: an fsync starts as soon as none is in flight, so a
// durable callback never waits for a `flushIntervalMs` tick. With flushIntervalMs at 10 minutes,
// the old fixed-tick schedule made every append after the first wait ~10 minutes (this test then
// hits its timeout); group commit acks each round after one or two fsyncs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CommitLog } from '../../src/commitlog/index.js'
import { silentLogger } from '../../src/log/index.js'
import { tempDir } from '../helpers/net.js'

const TEN_MINUTES_MS = 600_000

test('interval policy: every round of appends becomes durable without waiting for flushIntervalMs', { timeout: 60_000 }, async () => {
  const tmp = await tempDir('cl-group')
  try {
    const log = await CommitLog.open({
      dir: tmp.path, segmentBytes: 1 << 20, flushPolicy: 'interval', flushIntervalMs: TEN_MINUTES_MS, maxRecordBytes: 1024,
      retentionBytes: 0, retentionMs: 0, log: silentLogger()
    })
    try {
      const order: number[] = []
      // Appends record n; resolves when its durable callback ran (recording the callback order).
      const appendNumbered = async (n: number): Promise<void> => await new Promise<void>((resolve, reject) => {
        log.append({ topic: 't/group', payload: Buffer.from(`m${n}`), qos: 1, retain: false, clientId: 'c' }, (err) => {
          if (err !== null) { reject(err); return }
          order.push(n)
          resolve()
        })
      })
      for (let round = 0; round < 5; round++) {
        // A burst per round: appends of one loop turn, and more while the first fsync runs.
        const done: Array<Promise<void>> = []
        for (let i = 0; i < 50; i++) done.push(appendNumbered(round * 100 + i))
        await new Promise((resolve) => setImmediate(resolve))
        for (let i = 50; i < 100; i++) done.push(appendNumbered(round * 100 + i))
        await Promise.all(done)
        // Durable means fsynced: the durable offset covers every record acked so far.
        assert.equal(log.durableOffset, log.endOffset)
      }
      // Callbacks fire exactly once each, in append order.
      assert.deepEqual(order, Array.from({ length: 500 }, (_, i) => i))
    } finally {
      await log.close()
    }
  } finally {
    await tmp.remove()
  }
})
