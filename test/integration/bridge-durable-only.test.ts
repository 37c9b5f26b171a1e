// With a replicate-ahead window of 0 the bridge ships only records that are durable at the edge
// (the log's replicableOffset is then its durableOffset): a crash truncates a non-durable tail and
// its offsets get reused, while the cloud's dedupe key is the edge offset. This holds however
// early the broker routes or acknowledges. Here the log's durable offset is held back by a
// wrapper: records past it must not reach the cloud until it moves. (With a window > 0 see
// bridge-replicate-ahead.test.ts.)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { BridgeLog } from '../../edge/bridge/client.js'
import type { CommitLog } from '../../src/commitlog/index.js'
import { tempDir, waitFor } from '../helpers/net.js'
import { bridgeClient, openEdgeLog } from './bridge-client-helpers.js'
import { startTestCloud, storeContents } from './bridge-helpers.js'

// A CommitLog whose durable offset, as the bridge sees it, is `held` until released.
function holdDurable (log: CommitLog): { view: BridgeLog, hold: (offset: number) => void, release: () => void } {
  let held: number | undefined
  let waiters: Array<() => void> = []
  const view: BridgeLog = {
    get startOffset () { return log.startOffset },
    get endOffset () { return log.endOffset },
    get replicableOffset () { return held ?? log.replicableOffset },
    append: (input, cb) => log.append(input, cb),
    read: (offset, limits) => log.read(offset, limits),
    readBytes: (offset, into, at, len, maxOffset) => log.readBytes(offset, into, at, len, maxOffset),
    skipGap: (offset) => log.skipGap(offset),
    gapBytesIn: (from, to) => log.gapBytesIn(from, to),
    // Nothing becomes replicable while held: it resolves on release.
    waitForReplicable: async (offset) => { await log.waitForReplicable(offset); if (held !== undefined) await new Promise<void>((resolve) => { waiters.push(resolve) }) },
    setReader: (name, offset) => { log.setReader(name, offset) },
    stats: () => log.stats()
  }
  return {
    view,
    hold: (offset) => { held = offset },
    release: () => { held = undefined; const w = waiters; waiters = []; for (const f of w) f() }
  }
}

test('records past the edge\'s durable offset are not replicated until they are durable', async () => {
  const cdir = await tempDir('durable-cloud')
  const edir = await tempDir('durable-edge')
  const cloud = await startTestCloud(cdir.path)
  const log = await openEdgeLog(edir.path, { replicateAheadBytes: 0 })
  const { view, hold, release } = holdDurable(log)
  const put = (i: number): number => log.append({ topic: `devices/${i % 2}/t`, payload: Buffer.from(`m${i}`), qos: 1, retain: false, clientId: 'dev' }).nextOffset
  for (let i = 0; i < 10; i++) put(i)
  await log.flush()
  const durable = log.durableOffset
  hold(durable)
  let end = 0
  for (let i = 10; i < 20; i++) end = put(i)
  await log.flush() // durable in fact, but not as the bridge sees it
  const bridge = bridgeClient(view, cloud.bridgeUrl)
  try {
    await bridge.start()
    await waitFor('the durable part acked', () => bridge.ackedOffset === durable, 10_000)
    // Give a wrong implementation every chance to send more: the bridge is waiting on its flush.
    await new Promise((resolve) => setTimeout(resolve, 300))
    assert.equal(bridge.ackedOffset, durable)
    assert.equal(await cloud.store.committedOffset('edge-a'), durable)
    assert.deepEqual((await storeContents(cloud)).map((r) => r.payload), Array.from({ length: 10 }, (_, i) => `m${i}`))
    release()
    await waitFor('everything acked once durable', () => bridge.ackedOffset === end, 10_000)
    assert.deepEqual((await storeContents(cloud)).map((r) => r.payload), Array.from({ length: 20 }, (_, i) => `m${i}`))
  } finally {
    await bridge.close()
    await log.close()
    await cloud.close()
    await edir.remove(); await cdir.remove()
  }
})
