// Edges replicating through two cloud nodes; the nats-server leading the uplink stream is frozen
// with SIGSTOP for 10 s (longer than the clients' request timeout, 5 s, and their stale-connection
// detection, 2 s pings x 3) and then resumed with SIGCONT: the system recovers without loss and
// without duplicates in the store.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { clusterAvailable, exactlyOnce, runClusterScenario, sleep, uplinkLeader } from '../integration/cluster-harness.js'

test('a NATS server (the uplink leader) frozen with SIGSTOP for 10 s, then SIGCONT: no loss, no duplicate', { timeout: 90_000 }, async (t) => {
  if (!clusterAvailable(t)) return
  let frozen = -1
  const res = await runClusterScenario({
    edgeClouds: [[0, 1], [1, 0]],
    durationS: 14,
    rate: 10,
    fault: async ({ nats }) => {
      await sleep(2000)
      frozen = await uplinkLeader(nats)
      nats.freeze(frozen)
      await sleep(10_000)
      nats.thaw(frozen)
    }
  })
  assert.ok(frozen >= 0)
  for (const { actual, expected } of exactlyOnce(res)) assert.deepEqual(actual, expected)
})
