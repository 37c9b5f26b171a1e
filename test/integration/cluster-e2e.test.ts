// Two stateless cloud nodes over a 3-node NATS JetStream cluster, all real processes: edge-a
// replicates through node A, edge-b through node B, and each edge's messages are checked by a
// cloud subscriber on the OTHER node (delivery to MQTT comes from the shared store, not from the
// node's own ingest). The store holds every message exactly once, in per-device order, as seen
// through either node.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSimProcess, storeAccounting } from '../helpers/bridge-processes.js'
import { waitFor } from '../helpers/net.js'
import type { NatsCluster } from '../helpers/nats-cluster.js'
import type { EdgeProcess } from '../helpers/edge-process.js'
import { clusterAvailable, drained, startCluster, startClusterCloud, startClusterEdge, type CloudNodeHandle } from './cluster-harness.js'

test('two cloud nodes on a JetStream cluster: a subscriber on either node gets every edge, store exactly once', { timeout: 90_000 }, async (t) => {
  if (!clusterAvailable(t)) return
  const dirs: Array<{ remove: () => Promise<void> }> = []
  let nats: NatsCluster | undefined
  const clouds: CloudNodeHandle[] = []
  const edges: EdgeProcess[] = []
  try {
    nats = await startCluster()
    clouds.push(await startClusterCloud(nats, 'node-a', dirs), await startClusterCloud(nats, 'node-b', dirs))
    const [a, b] = clouds
    edges.push(await startClusterEdge('edge-a', [a.proc.bridgeUrl], dirs), await startClusterEdge('edge-b', [b.proc.bridgeUrl], dirs))
    const common = ['--devices', '10', '--rate', '20', '--duration', '3s', '--payload', 'binary', '--payload-bytes', '100', '--drain-timeout', '20s', '--expect-no-loss']
    const simA = spawnSimProcess(['--broker', edges[0].url, '--id-prefix', 'sa', '--check-url', `mqtt://127.0.0.1:${b.proc.mqttPort}`, '--check-prefix', 'up/edge-a/', ...common])
    const simB = spawnSimProcess(['--broker', edges[1].url, '--id-prefix', 'sb', '--check-url', `mqtt://127.0.0.1:${a.proc.mqttPort}`, '--check-prefix', 'up/edge-b/', ...common])
    const [ra, rb] = await Promise.all([simA.done, simB.done])
    for (const r of [ra, rb]) {
      assert.equal(r.code, 0, r.stderr)
      const rep = r.report as { sent: number, received: number, lost: number }
      assert.ok(rep.sent > 300, `sent ${rep.sent}`)
      assert.equal(rep.lost, 0)
      assert.equal(rep.received, rep.sent)
    }
    for (const e of edges) await waitFor('edge drained', async () => await drained(e), 20_000)
    for (const [r, node] of [[ra, a], [rb, b], [ra, b], [rb, a]] as const) {
      const rep = r.report as { runId: number, sent: number }
      const acc = await storeAccounting(node.proc.httpPort, rep.runId)
      assert.deepEqual(acc, { records: rep.sent, distinct: rep.sent, duplicates: 0, outOfOrder: 0, gaps: 0, devices: 10 })
    }
  } finally {
    for (const e of edges) await e.kill()
    for (const c of clouds) await c.proc.kill()
    await nats?.stop()
    for (const d of dirs) await d.remove()
  }
})
