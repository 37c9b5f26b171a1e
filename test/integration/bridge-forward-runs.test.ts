// The bridge ships its log's bytes as they are (LOG_BATCH), leaving out downlinks and topics
// outside `forward` by moving the kept records together into runs. With a backlog where kept
// and dropped records alternate in every pattern, the cloud must hold exactly the kept ones, with
// their own edge offsets, once each, in order, and the edge's checkpoint must reach the log end.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { DOWNLINK_CLIENT_ID } from '../../edge/bridge/client.js'
import { TopicFilterSet } from '../../src/protocol/topic-filter.js'
import { tempDir, waitFor } from '../helpers/net.js'
import { bridgeClient, openEdgeLog } from './bridge-client-helpers.js'
import { startTestCloud, storeContents } from './bridge-helpers.js'

for (const forward of [['devices/#'], ['#'], ['#', '$internal/#']]) {
  test(`a backlog mixing forwarded and dropped records arrives exactly (forward ${forward.join(',')})`, async () => {
    const cdir = await tempDir('runs-cloud')
    const edir = await tempDir('runs-edge')
    const cloud = await startTestCloud(cdir.path)
    const log = await openEdgeLog(edir.path, { segmentBytes: 64 * 1024, maxRecordBytes: 16 * 1024 })
    const expected: Array<{ topic: string, payload: string, edgeOffset: number }> = []
    const filters = new TopicFilterSet(forward) // the reference for what `forward` selects
    // Pseudo-random pattern (fixed seed): device records, other topics, '$' topics (not matched
    // by '#' alone) and downlinks (never sent).
    let seed = 7
    const rnd = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % 10 }
    for (let i = 0; i < 3000; i++) {
      const k = rnd()
      const [topic, clientId] = k < 5 ? [`devices/${i % 4}/t`, 'dev'] : k < 7 ? [`local/${i % 3}`, 'dev'] : k < 8 ? ['$internal/x', 'dev'] : [`devices/${i % 4}/cmd`, DOWNLINK_CLIENT_ID]
      const payload = `p${i}-${'x'.repeat(i % 50)}`
      const at = log.append({ topic, payload: Buffer.from(payload), qos: 1, retain: false, clientId }).offset
      const kept = clientId !== DOWNLINK_CLIENT_ID && filters.matches(topic)
      if (kept) expected.push({ topic, payload, edgeOffset: at })
    }
    await log.flush()
    // Small batches: many of them start, end and split runs at different places.
    const bridge = bridgeClient(log, cloud.bridgeUrl, { forward, batchMaxBytes: 4096, batchMaxRecords: 97, windowBatches: 8 })
    try {
      await bridge.start()
      await waitFor('the whole log acked', () => bridge.ackedOffset === log.durableOffset, 20_000)
      const stored = await storeContents(cloud)
      assert.equal(stored.length, expected.length)
      assert.deepEqual(stored.map((r) => ({ topic: r.topic, payload: r.payload, edgeOffset: r.edgeOffset })), expected)
    } finally {
      await bridge.close()
      await log.close()
      await cloud.close()
      await edir.remove(); await cdir.remove()
    }
  })
}
