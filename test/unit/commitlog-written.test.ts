// CommitLog.waitForWritten: resolves once an appended record has been written to the file
// (without anyone reading past the written end, which would write synchronously), and rejects
// for waiters still pending when the log closes. The embedded cloud store's readers use it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { CommitLog, type CommitLogOptions } from '../../src/commitlog/index.js'
import { silentLogger } from '../../src/log/index.js'
import { tempDir } from '../helpers/net.js'

function options (dir: string): CommitLogOptions {
  return { dir, segmentBytes: 1 << 20, flushPolicy: 'interval', flushIntervalMs: 2, maxRecordBytes: 1024, retentionBytes: 0, retentionMs: 0, replicateAheadBytes: 0, log: silentLogger() }
}

test('waitForWritten resolves after the turn\'s write, not synchronously at append', async () => {
  const dir = await tempDir('commitlog-written')
  const log = await CommitLog.open(options(join(dir.path, 'log')))
  try {
    const r = log.append({ topic: 't', payload: Buffer.from('x'), qos: 1, retain: false, clientId: 'c' })
    // Appended, not yet written: the write happens once this turn is over (flushSoon).
    assert.ok(log.writtenOffset <= r.offset, 'not written synchronously by append')
    await log.waitForWritten(r.offset)
    assert.ok(log.writtenOffset >= r.nextOffset)
    // Already written: resolves at once.
    await log.waitForWritten(r.offset)
  } finally {
    await log.close()
    await dir.remove()
  }
})

test('a waiter past the end is rejected when the log closes', async () => {
  const dir = await tempDir('commitlog-written-close')
  const log = await CommitLog.open(options(join(dir.path, 'log')))
  const pending = log.waitForWritten(log.endOffset + 1000)
  await log.close()
  await assert.rejects(pending, (err: Error & { code?: string }) => err.code === 'TRIB_ERR_LOG_CLOSED')
  await dir.remove()
})
