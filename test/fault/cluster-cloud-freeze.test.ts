// Fencing. Cloud node A is frozen with SIGSTOP while edge-a streams through it; the edge declares
// the link dead (heartbeat timeout) and reconnects to node B, which takes the edge's lease once
// A's has expired. Then A is resumed while it still believes it holds the edge, with the edge's
// last frames unread in its socket: only one node writes (A's append is refused by the lease
// compare-and-set, A drops the connection with TRIB_ERR_STORE_FENCED or sees it closed), and the
// store holds every message exactly once. Whether A still tries to append after the resume
// depends on timing here (hence a diagnostic, not an assertion); test/fault/cluster-fencing.test.ts
// drives the bridge frame by frame and asserts the refusal deterministically.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { clusterAvailable, exactlyOnce, runClusterScenario, sleep } from '../integration/cluster-harness.js'

test('a cloud node frozen past its lease, then resumed: the edge moved to the other node, only one writes, exactly once', { timeout: 90_000 }, async (t) => {
  if (!clusterAvailable(t)) return
  let fencedAtA = -1
  let connectionsAtB = -1
  const res = await runClusterScenario({
    edgeClouds: [[0, 1]],
    durationS: 12,
    fault: async ({ clouds }) => {
      await sleep(2000)
      const pid = clouds[0].proc.child.pid as number
      process.kill(pid, 'SIGSTOP')
      try {
        await sleep(8000) // > edge heartbeat timeout (4 s) + lease TTL (3 s)
      } finally {
        process.kill(pid, 'SIGCONT')
      }
      connectionsAtB = await metric(clouds[1].proc.httpPort, 'tributary_cloud_bridge_connections_total')
    },
    inspect: async ({ clouds }) => { fencedAtA = await metric(clouds[0].proc.httpPort, 'tributary_cloud_bridge_fenced_total') }
  })
  for (const { actual, expected } of exactlyOnce(res)) assert.deepEqual(actual, expected)
  assert.ok(connectionsAtB >= 1, `edge-a failed over to node B (connections at B: ${connectionsAtB})`)
  t.diagnostic(`appends/renewals refused at node A after the resume: ${fencedAtA}`)
})

async function metric (httpPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text)
  return m === null ? -1 : Number(m[1])
}
