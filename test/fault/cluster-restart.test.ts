// The whole NATS cluster is stopped (SIGTERM, all three servers) while edges keep publishing,
// and started again 5 s later: what was stored before is still there, the edges buffered, and
// replication resumes from the right offsets (every message exactly once, no gap, in order).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { clusterAvailable, exactlyOnce, runClusterScenario, sleep } from '../integration/cluster-harness.js'

test('the whole NATS cluster stopped and restarted mid-stream: data kept, replication resumes exactly once', { timeout: 90_000 }, async (t) => {
  if (!clusterAvailable(t)) return
  const res = await runClusterScenario({
    edgeClouds: [[0, 1], [1, 0]],
    durationS: 12,
    rate: 10,
    // The checker subscribes at cloud node A: its dispatcher must survive the store outage too.
    checkAt: 0,
    fault: async ({ nats }) => {
      await sleep(2500)
      await nats.stopAll()
      assert.ok(nats.nodes.every((n) => n.state === 'stopped'))
      await sleep(5000)
      await nats.startAll()
    },
    drainTimeoutMs: 40_000
  })
  for (const { actual, expected } of exactlyOnce(res)) assert.deepEqual(actual, expected)
})
