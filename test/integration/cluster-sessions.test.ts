// Persistent MQTT sessions of cloud subscribers live in the NATS cluster (cloud/sessions/, a KV
// record per client id), not on the cloud node's disk: a subscriber that went away resumes
// where it stopped after its cloud node was restarted with the same --node-id on an EMPTY data
// dir (as a replacement machine would be), receiving what arrived meanwhile, in order.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import mqtt from 'mqtt'
import { tempDir, waitFor } from '../helpers/net.js'
import { startCloudProcess } from '../helpers/cloud-process.js'
import { startNatsCluster, type NatsCluster } from '../helpers/nats-cluster.js'
import type { EdgeProcess } from '../helpers/edge-process.js'
import { clusterAvailable, drained, startClusterEdge } from './cluster-harness.js'

async function publishAtEdge (edge: EdgeProcess, from: number, to: number): Promise<void> {
  const c = await mqtt.connectAsync(edge.url, { clientId: `dev-${from}`, reconnectPeriod: 0 })
  for (let i = from; i < to; i++) await c.publishAsync('devices/d1/telemetry', `m${i}`, { qos: 1 })
  await c.endAsync()
}

test('a persistent cloud subscriber resumes after its node is replaced (same node id, empty disk)', { timeout: 90_000 }, async (t) => {
  if (!clusterAvailable(t)) return
  const dirs: Array<{ remove: () => Promise<void> }> = []
  let nats: NatsCluster | undefined
  let edge: EdgeProcess | undefined
  const procs: Array<{ kill: () => Promise<void> }> = []
  try {
    nats = await startNatsCluster({ size: 3 })
    const d1 = await tempDir('cs-1'); const d2 = await tempDir('cs-2'); dirs.push(d1, d2)
    const { freePort } = await import('../helpers/net.js')
    const [mqttPort, bridgePort, httpPort] = [await freePort(), await freePort(), await freePort()]
    const args = (dir: string): string[] => ['--store', nats!.urls.join(','), '--node-id', 'cloud-x', '--data-dir', dir, '--mqtt-port', String(mqttPort), '--bridge-port', String(bridgePort), '--http-port', String(httpPort), '--edge-token', 'edge-a=tok-a', '--log-level', 'warn']
    const first = await startCloudProcess(args(d1.path), 30_000)
    procs.push(first)
    edge = await startClusterEdge('edge-a', [first.bridgeUrl], dirs)

    const got: string[] = []
    const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: 'app-1', clean: false, reconnectPeriod: 0 })
    sub.on('message', (_topic, payload) => { got.push(payload.toString()) })
    await sub.subscribeAsync('up/edge-a/devices/#', { qos: 1 })
    await publishAtEdge(edge, 0, 20)
    await waitFor('live messages', async () => got.length >= 20, 20_000)
    await sub.endAsync()

    // Away: 20 more arrive while the node still runs (queued in its session), then the node is
    // stopped, 20 more are buffered at the edge, and a new process takes over on an empty disk.
    await publishAtEdge(edge, 20, 40)
    await waitFor('edge drained', async () => await drained(edge!), 20_000)
    await new Promise((resolve) => setTimeout(resolve, 1500)) // the dispatcher has queued them
    await first.stop()
    await publishAtEdge(edge, 40, 60)
    const second = await startCloudProcess(args(d2.path), 40_000)
    procs.push(second)

    const again = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: 'app-1', clean: false, reconnectPeriod: 0 })
    again.on('message', (_topic, payload) => { got.push(payload.toString()) })
    assert.equal(again.connected, true)
    await waitFor('queued messages after the replacement', async () => got.length >= 60, 30_000)
    await new Promise((resolve) => setTimeout(resolve, 500))
    await again.endAsync()
    const expected = Array.from({ length: 60 }, (_, i) => `m${i}`)
    assert.deepEqual(got, expected)
  } finally {
    await edge?.kill()
    for (const p of procs) await p.kill()
    await nats?.stop()
    for (const d of dirs) await d.remove()
  }
})
