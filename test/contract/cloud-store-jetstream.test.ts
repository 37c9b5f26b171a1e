// The cloud store contract (test/contract/cloud-store-suite.ts) against the JetStream store on a
// real 3-node nats-server cluster with R3 streams. One cluster serves the whole file; each test
// gets its own streams and buckets (a fresh name prefix) and deletes them afterwards.
import { after, test } from 'node:test'
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import { openJetStreamStore } from '../../cloud/store/jetstream.js'
import { cloudStoreContract } from './cloud-store-suite.js'
import { natsServerPath, startNatsCluster, type NatsCluster } from '../helpers/nats-cluster.js'

if (natsServerPath() === undefined && process.env.CI !== 'true') {
  test('jetstream: cloud store contract', (t) => { t.skip('nats-server not installed') })
} else {
  let cluster: Promise<NatsCluster> | undefined
  after(async () => { if (cluster !== undefined) await (await cluster).stop() })
  let n = 0
  cloudStoreContract('jetstream', async () => {
    // Under CI=true a missing nats-server makes this throw: the test fails, it does not skip.
    cluster ??= startNatsCluster()
    const c = await cluster
    const prefix = `C${process.pid}x${++n}`
    return {
      open: async () => await openJetStreamStore({ servers: c.urls, prefix, replicas: 3 }),
      destroy: async () => { await deleteStreams(c.urls, prefix) }
    }
  })
}

async function deleteStreams (servers: readonly string[], prefix: string): Promise<void> {
  const nc = await connect({ servers: [...servers] })
  try {
    const jsm = await jetstreamManager(nc)
    const upper = prefix.toUpperCase()
    for await (const name of jsm.streams.names()) {
      if (name.startsWith(`${upper}_`) || name.startsWith(`KV_${upper}_`)) await jsm.streams.delete(name)
    }
  } finally {
    await nc.close()
  }
}
