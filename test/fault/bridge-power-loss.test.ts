// A power loss at the edge after the bridge replicated ahead of its fsync (replicate-ahead window,
// src/commitlog/README.md "Offsets"): the cloud holds records the edge's disk lost. Simulated with
// real processes: SIGKILL the edge, then cut its active segment back to the checkpoint's
// durableOffset (what a lost page cache leaves; if a periodic checkpoint already covered
// everything, to the middle of what the cloud holds), restart it. Recovery leaves an offset gap,
// so every message published after the restart reaches the cloud store and a cloud subscriber
// (without the gap the new records reuse offsets the cloud has and are dropped as replays), and no
// edge offset is stored twice in the cloud.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, statSync, truncateSync } from 'node:fs'
import { join } from 'node:path'
import { connectAsync } from 'mqtt'
import { readCheckpoint } from '../../src/commitlog/checkpoint.js'
import { tempDir, waitFor } from '../helpers/net.js'
import { startCloudProcess } from '../helpers/cloud-process.js'
import { startEdge, type EdgeProcess } from '../helpers/edge-process.js'

interface Stored { payload: string, edgeOffset: number }

async function stored (httpPort: number): Promise<Stored[]> {
  const out: Stored[] = []
  let seq = 0
  for (;;) {
    const body = await (await fetch(`http://127.0.0.1:${httpPort}/read?fromSeq=${seq}&limit=5000`)).json() as { nextSeq: number, records: Array<{ payloadBase64: string, edgeOffset: number }> }
    for (const r of body.records) out.push({ payload: Buffer.from(r.payloadBase64, 'base64').toString(), edgeOffset: r.edgeOffset })
    if (body.records.length === 0) return out
    seq = body.nextSeq
  }
}

async function publishAll (port: number, prefix: string, n: number): Promise<void> {
  const client = await connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'dev', reconnectPeriod: 0 })
  for (let i = 0; i < n; i++) await client.publishAsync('devices/1/t', `${prefix}-${i}`, { qos: 1 })
  await client.endAsync()
}

test('power loss after replicating ahead: messages published after the restart all reach the cloud, no edge offset stored twice', async () => {
  const cdir = await tempDir('pl-cloud')
  const edir = await tempDir('pl-edge')
  const cloud = await startCloudProcess(['--data-dir', cdir.path, '--mqtt-port', '0', '--bridge-port', '0', '--http-port', '0', '--edge-token', 'edge-a=tok', '--log-level', 'warn'])
  const edgeArgs = ['--cloud-url', cloud.bridgeUrl, '--edge-id', 'edge-a', '--cloud-token', 'tok', '--log-level', 'info',
    '--bridge-backoff-min', '50ms', '--bridge-checkpoint-interval', '100ms']
  const N = 200
  let edge: EdgeProcess = await startEdge({ dataDir: edir.path, args: edgeArgs })
  const app = await connectAsync(`mqtt://127.0.0.1:${cloud.mqttPort}`, { clientId: 'app', reconnectPeriod: 0 })
  try {
    const got: string[] = []
    app.on('message', (_t, p) => { got.push(p.toString()) })
    await app.subscribeAsync('up/edge-a/#', { qos: 1 })
    await publishAll(edge.mqttPort, 'a', N)
    await waitFor('the first messages in the cloud', async () => (await stored(cloud.httpPort)).length === N, 15_000)
    await edge.kill()

    // The power loss: the active segment keeps only what the checkpoint says was durable.
    const logDir = join(edir.path, 'log')
    const cp = readCheckpoint(join(logDir, 'checkpoint'))
    assert.ok(cp !== null, 'the edge wrote a checkpoint')
    const seg = readdirSync(logDir).filter((f) => f.endsWith('.log')).sort().at(-1) as string
    const base = Number(seg.slice(0, 20))
    const size = statSync(join(logDir, seg)).size
    const before = await stored(cloud.httpPort)
    // A periodic checkpoint may already cover everything: then lose the second half instead.
    const cut = cp.durableOffset < base + size ? cp.durableOffset : (before[N / 2] as Stored).edgeOffset
    assert.ok(cut >= base && cut < base + size, `cut ${cut} inside the active segment [${base}, ${base + size})`)
    truncateSync(join(logDir, seg), cut - base)
    const lost = before.filter((r) => r.edgeOffset >= cut).length
    assert.ok(lost > 0, 'the cloud holds records the edge lost (what the test is about)')

    edge = await startEdge({ dataDir: edir.path, args: edgeArgs })
    assert.match(edge.output(), /"gapBytes":8388608/, 'recovery left an offset gap of the window')
    await publishAll(edge.mqttPort, 'b', N)
    const wanted = Array.from({ length: N }, (_, i) => `b-${i}`)
    await waitFor('every message published after the restart in the cloud store', async () => {
      const s = new Set((await stored(cloud.httpPort)).map((r) => r.payload))
      return wanted.every((p) => s.has(p))
    }, 15_000)
    await waitFor('every message published after the restart at the cloud subscriber', () => wanted.every((p) => got.includes(p)), 15_000)

    const after = await stored(cloud.httpPort)
    assert.deepEqual(after.filter((r) => r.payload.startsWith('b-')).map((r) => r.payload), wanted, 'once each, in order')
    const offsets = after.map((r) => r.edgeOffset)
    assert.equal(new Set(offsets).size, offsets.length, 'no edge offset stored twice')
    // What the edge lost stays in the cloud (never acked to the device: see the README trade-off).
    assert.equal(after.filter((r) => r.payload.startsWith('a-')).length, N)
  } finally {
    await app.endAsync()
    await edge.kill(); await cloud.kill()
    await edir.remove(); await cdir.remove()
  }
})
