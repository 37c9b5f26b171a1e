// A long outage that hits the edge's disk cap: the commitlog applies drop-oldest, the drops are
// counted (metrics) and logged, and after the link returns the cloud holds exactly the newest
// messages that survived, once each, in order.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import pino from 'pino'
import { Registry } from 'prom-client'
import { freePort, tempDir, waitFor } from '../helpers/net.js'
import { registerBridgeMetrics } from '../../edge/bridge/index.js'
import { mqttClient, startTestCloud, startTestEdge, storeContents } from '../integration/bridge-helpers.js'

test('an outage past the disk cap drops the oldest records, counted and logged, never silently', async () => {
  const cdir = await tempDir('cap-cloud')
  const edir = await tempDir('cap-edge')
  const bridgePort = await freePort()
  const lines: string[] = []
  const logger = pino({ level: 'warn' }, { write: (s: string) => { lines.push(s) } })
  const edge = await startTestEdge(edir.path, [
    '--cloud-url', `ws://127.0.0.1:${bridgePort}/bridge`, '--edge-id', 'edge-a', '--cloud-token', 'secret-a',
    '--segment-bytes', '64KiB', '--max-record-bytes', '16KiB', '--retention-bytes', '256KiB', '--bridge-backoff-min', '50ms', '--bridge-backoff-max', '300ms'
  ], logger)
  const registry = new Registry()
  registerBridgeMetrics(registry, edge.bridge.client)
  const N = 8000
  const pub = await mqttClient(edge.mqttPort, { clientId: 'dev' })
  let cloud: Awaited<ReturnType<typeof startTestCloud>> | undefined
  try {
    const pad = 'x'.repeat(80)
    await Promise.all(Array.from({ length: N }, async (_, i) => await pub.publishAsync('devices/1/t', `p-${i}-${pad}`, { qos: 1 })))
    const dropped = edge.bridge.client.droppedRecords()
    assert.ok(dropped > 0, 'the disk cap deleted records the cloud never received')
    const metrics = await registry.metrics()
    assert.match(metrics, new RegExp(`tributary_bridge_dropped_records_total ${dropped}\\b`))
    assert.ok(lines.some((l) => l.includes('"reader":"bridge"') && l.includes('had not read')), 'the drop is logged with the reader and counts')
    cloud = await startTestCloud(cdir.path, ['--bridge-port', String(bridgePort)])
    await waitFor('the backlog drained', () => edge.bridge.status().state === 'ready' && edge.bridge.status().lagBytes === 0, 20_000)
    const stored = (await storeContents(cloud)).map((r) => r.payload)
    assert.equal(stored.length + dropped, N, 'every message is either in the cloud or counted as dropped')
    assert.deepEqual(stored, Array.from({ length: stored.length }, (_, i) => `p-${dropped + i}-${pad}`), 'the newest survive, in order, once')
    assert.ok(lines.some((l) => l.includes('deleted by retention')), 'the bridge reports the gap when it resumes')
  } finally {
    await pub.endAsync()
    await edge.close(); await cloud?.close()
    await edir.remove(); await cdir.remove()
  }
})
