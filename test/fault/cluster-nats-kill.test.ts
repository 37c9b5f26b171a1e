// Edges replicating through two cloud nodes into a 3-node NATS cluster; the nats-server leading
// the uplink stream is SIGKILLed mid-stream and stays down: no message lost, none duplicated in
// the store, and the stream keeps accepting writes (everything sent after the kill is stored).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { clusterAvailable, exactlyOnce, runClusterScenario, sleep, uplinkLeader } from '../integration/cluster-harness.js'

test('a NATS server (the uplink leader) SIGKILLed mid-stream: every message stored exactly once, writes continue', { timeout: 90_000 }, async (t) => {
  if (!clusterAvailable(t)) return
  let killed = -1
  const res = await runClusterScenario({
    edgeClouds: [[0, 1], [1, 0]],
    durationS: 8,
    fault: async ({ nats }) => {
      await sleep(2500)
      killed = await uplinkLeader(nats)
      await nats.kill(killed, 'SIGKILL')
      assert.equal(nats.nodes[killed].state, 'stopped')
    }
  })
  assert.ok(killed >= 0)
  for (const { actual, expected } of exactlyOnce(res)) assert.deepEqual(actual, expected)
  assert.ok(res.sent.every((n) => n > 1000), `sent ${res.sent.join(',')}`)
})
