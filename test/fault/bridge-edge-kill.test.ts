// The edge is killed with SIGKILL in the middle of replicating a backlog, then restarted from the
// same data directory: the cloud store ends with every message once, in order (the edge resumes
// from the offset the cloud acked; what it sends again is skipped by the cloud).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connectAsync } from 'mqtt'
import { tempDir, waitFor } from '../helpers/net.js'
import { startCloudProcess } from '../helpers/cloud-process.js'
import { scrapeBridge } from '../helpers/bridge-processes.js'
import { startEdge, type EdgeProcess } from '../helpers/edge-process.js'

async function storedPayloads (httpPort: number): Promise<string[]> {
  const out: string[] = []
  let seq = 0
  for (;;) {
    const body = await (await fetch(`http://127.0.0.1:${httpPort}/read?fromSeq=${seq}&limit=5000`)).json() as { nextSeq: number, records: Array<{ payloadBase64: string }> }
    for (const r of body.records) out.push(Buffer.from(r.payloadBase64, 'base64').toString())
    if (body.records.length === 0) return out
    seq = body.nextSeq
  }
}

test('edge SIGKILLed mid-replication and restarted: no loss, no duplicate in the cloud store', async () => {
  const cdir = await tempDir('ek-cloud')
  const edir = await tempDir('ek-edge')
  const cloud = await startCloudProcess(['--data-dir', cdir.path, '--mqtt-port', '0', '--bridge-port', '0', '--http-port', '0', '--edge-token', 'edge-a=tok', '--log-level', 'warn'])
  const edgeArgs = ['--cloud-url', cloud.bridgeUrl, '--edge-id', 'edge-a', '--cloud-token', 'tok', '--log-level', 'warn',
    '--bridge-backoff-min', '50ms', '--bridge-checkpoint-interval', '100ms']
  const N = 6000
  // A rate cap keeps replication slow enough to be killed in the middle of it.
  let edge: EdgeProcess = await startEdge({ dataDir: edir.path, args: [...edgeArgs, '--bridge-rate-msgs', '1500', '--bridge-batch-records', '100'] })
  try {
    const client = await connectAsync(`mqtt://127.0.0.1:${edge.mqttPort}`, { clientId: 'dev', reconnectPeriod: 0 })
    await Promise.all(Array.from({ length: N }, async (_, i) => await client.publishAsync('devices/1/t', `p-${i}`, { qos: 1 })))
    await client.endAsync()
    await waitFor('replication under way', async () => { const s = await scrapeBridge(edge.httpPort); return s !== undefined && s.ackedOffset > 0 && s.lagBytes > 0 }, 15_000)
    await edge.kill()
    const partial = (await storedPayloads(cloud.httpPort)).length
    assert.ok(partial > 0 && partial < N, `killed mid-replication (${partial} of ${N} in the cloud)`)
    edge = await startEdge({ dataDir: edir.path, args: edgeArgs })
    await waitFor('the backlog drained', async () => { const s = await scrapeBridge(edge.httpPort); return s !== undefined && s.connected && s.lagBytes === 0 }, 30_000)
    const stored = await storedPayloads(cloud.httpPort)
    assert.equal(stored.length, N)
    assert.deepEqual(stored, Array.from({ length: N }, (_, i) => `p-${i}`))
  } finally {
    await edge.kill(); await cloud.kill()
    await edir.remove(); await cdir.remove()
  }
})
