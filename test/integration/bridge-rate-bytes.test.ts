// A bytes/s rate cap hands the bridge byte budgets down to a few bytes; a raw read must still
// take whole records (the first one whole, whatever the budget) and the backlog must arrive
// complete, once each, in order.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { tempDir, waitFor } from '../helpers/net.js'
import { bridgeClient, openEdgeLog } from './bridge-client-helpers.js'
import { startTestCloud, storeContents } from './bridge-helpers.js'

test('a backlog drained under a small bytes/s cap arrives whole, once each, in order', async () => {
  const cdir = await tempDir('rate-cloud')
  const edir = await tempDir('rate-edge')
  const cloud = await startTestCloud(cdir.path)
  const log = await openEdgeLog(edir.path)
  // 16 records of 100 to 250 B: about 2.7 KB against 1,000 B/s (1 byte per ms), so the budget
  // runs dry several times and is then a few bytes: less than a frame's length field.
  const payloads = Array.from({ length: 16 }, (_, i) => `r${i}-${'y'.repeat(100 + (i * 37) % 150)}`)
  for (const p of payloads) log.append({ topic: 'devices/1/t', payload: Buffer.from(p), qos: 1, retain: false, clientId: 'dev' })
  await log.flush()
  const bridge = bridgeClient(log, cloud.bridgeUrl, { rateBytesPerSec: 1000 })
  try {
    await bridge.start()
    await waitFor('the whole backlog acked', () => bridge.ackedOffset === log.durableOffset, 20_000)
    assert.deepEqual((await storeContents(cloud)).map((r) => r.payload), payloads)
    assert.ok(bridge.counters.batchesSent > 3, 'the cap split the backlog into several batches')
  } finally {
    await bridge.close()
    await log.close()
    await cloud.close()
    await edir.remove(); await cdir.remove()
  }
})
