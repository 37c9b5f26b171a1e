// Proves the 3-node nats-server harness (test/helpers/nats-cluster.ts): the cluster starts with a
// JetStream meta leader, an R3 stream stays writable with one node SIGKILLed, the node comes
// back with its data, and stop() leaves no process behind.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from '@nats-io/transport-node'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { natsServerOrSkip, startNatsCluster } from '../helpers/nats-cluster.js'
import { waitFor } from '../helpers/net.js'

test('nats cluster harness: R3 stream survives SIGKILL of one node, node restarts', { timeout: 90_000 }, async (t) => {
  if (natsServerOrSkip(t) === undefined) return
  const cluster = await startNatsCluster()
  const pids = cluster.nodes.map((n) => n.pid)
  try {
    assert.equal(cluster.nodes.length, 3)
    assert.ok(pids.every((p) => typeof p === 'number'))
    const nc = await connect({ servers: [...cluster.urls], maxReconnectAttempts: -1, reconnectTimeWait: 100 })
    try {
      const jsm = await jetstreamManager(nc)
      const info = await jsm.streams.add({ name: 'HARNESS', subjects: ['harness.>'], num_replicas: 3 })
      assert.equal(info.config.num_replicas, 3)
      const js = jetstream(nc, { timeout: 5_000 })
      const first = await js.publish('harness.a', 'one')
      assert.equal(first.seq, 1)

      // Kill the node this client is connected to, if it is one of ours, to exercise failover too.
      const victim = cluster.nodes.findIndex((n) => n.clientPort === nc.info?.port)
      const index = victim >= 0 ? victim : 0
      await cluster.kill(index, 'SIGKILL')
      assert.equal(cluster.nodes[index]?.state, 'stopped')
      assert.throws(() => process.kill(pids[index] as number, 0), /ESRCH/)

      // Two of three replicas remain: a quorum, so the stream keeps accepting writes (after the
      // client reconnects and, if the victim led the stream, a new leader is elected).
      let second = 0
      await waitFor('write with one node down', async () => {
        try { second = (await js.publish('harness.a', 'two', { msgID: 'two' })).seq; return true } catch { return false }
      }, 30_000, 200)
      assert.equal(second, 2)

      await cluster.restart(index)
      assert.equal(cluster.nodes[index]?.state, 'running')
      const third = await js.publish('harness.a', 'three')
      assert.equal(third.seq, 3)
      const state = (await jsm.streams.info('HARNESS')).state
      assert.equal(state.messages, 3)
      const got = await jsm.streams.getMessage('HARNESS', { seq: 2 })
      assert.equal(got?.string(), 'two')
    } finally {
      await nc.close()
    }
  } finally {
    await cluster.stop()
  }
  for (const n of cluster.nodes) assert.equal(n.state, 'stopped')
  for (const pid of pids) assert.throws(() => process.kill(pid as number, 0), /ESRCH/)
})
