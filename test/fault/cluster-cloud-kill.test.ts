// Two edges replicate through cloud node A (node B is their second URL); node A is SIGKILLed
// mid-stream: both edges fail over to node B (which takes their leases once A's expire) and the
// store ends with every message exactly once, in per-device order.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { clusterAvailable, exactlyOnce, runClusterScenario, sleep } from '../integration/cluster-harness.js'

test('a cloud node SIGKILLed mid-stream: its edges fail over to the other node, every message exactly once', { timeout: 90_000 }, async (t) => {
  if (!clusterAvailable(t)) return
  let bridgedBefore = 0
  const res = await runClusterScenario({
    edgeClouds: [[0, 1], [0, 1]],
    durationS: 8,
    // The checker subscribes at node B: it sees every message although the edges started on A.
    checkAt: 1,
    fault: async ({ clouds }) => {
      await sleep(2500)
      bridgedBefore = await bridgeConnections(clouds[1].proc.httpPort)
      await clouds[0].proc.kill()
    }
  })
  assert.equal(bridgedBefore, 0, 'node B served no edge before the kill')
  for (const { actual, expected } of exactlyOnce(res)) assert.deepEqual(actual, expected)
})

async function bridgeConnections (httpPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()
  const m = /^tributary_cloud_bridge_connections_total (\S+)$/m.exec(text)
  return m === null ? -1 : Number(m[1])
}
