// The NATS peer of the bridge benchmark (issue 4): Debian nats-server as a leaf node with a
// JetStream stream (the edge), sourced into a stream of a hub server (the cloud).
//   leaf: JetStream domain "leaf", stream EDGE on devices.>, file storage (durable at the edge);
//         leafnode remote to the hub.
//   hub:  JetStream domain "hub", stream HUB sourcing EDGE through $JS.leaf.API.
// Backlog drain: the hub is down while N messages are stored in EDGE; the hub starts, the leaf
// links to it, HUB is created with its source; timed from then until HUB holds N messages.
// Processes are started and stopped by PID; ports from freePort(), state in a temp dir.
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream'
import { freePort, tempDir, waitFor } from '../helpers/net.js'
import { natsServerPath } from '../helpers/nats-cluster.js'
import { stopChild } from './broker-procs.js'

import { CLOUD_CORE, EDGE_CORE, pin } from './bridge-pin.js'

export { natsServerPath }

interface NatsProc { child: ChildProcess, port: number, stop: () => Promise<void> }

async function startNats (bin: string, confPath: string, conf: string, port: number): Promise<NatsProc> {
  await writeFile(confPath, conf)
  const child = spawn(bin, ['-c', confPath], { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  child.stderr!.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-4000) })
  const stop = async (): Promise<void> => { await stopChild(child) }
  try {
    await waitFor(`nats-server on ${port}`, async () => {
      if (child.exitCode !== null) throw new Error(`nats-server exited: ${err}`)
      try { const nc = await connect({ servers: `127.0.0.1:${port}`, reconnect: false }); await nc.close(); return true } catch { return false }
    }, 10_000, 50)
  } catch (e) {
    await stop()
    throw e
  }
  return { child, port, stop }
}

async function streamMessages (jsm: JetStreamManager, name: string): Promise<number> {
  try { return (await jsm.streams.info(name)).state.messages } catch { return 0 }
}

// Stores n messages of `payloadBytes` in the leaf's EDGE stream. Core publishes (the stream
// captures the subject), flushed every 10,000 so the server's inbound buffer stays bounded; the
// count is checked through the stream afterwards.
async function fillEdge (nc: NatsConnection, jsm: JetStreamManager, n: number, payloadBytes: number): Promise<void> {
  const payload = new Uint8Array(payloadBytes).fill(7)
  for (let i = 0; i < n; i++) {
    nc.publish(`devices.${i % 100}.telemetry`, payload)
    if (i % 10_000 === 9_999) await nc.flush()
  }
  await nc.flush()
  await waitFor('EDGE holds the backlog', async () => (await streamMessages(jsm, 'EDGE')) >= n, 120_000, 50)
}

export async function natsLeafDrain (bin: string, n: number, payloadBytes: number): Promise<{ seconds: number, received: number }> {
  const dir = await tempDir('bench-nats-leaf')
  const [hubPort, hubLeafPort, leafPort] = [await freePort(), await freePort(), await freePort()]
  const procs: NatsProc[] = []
  const conns: NatsConnection[] = []
  try {
    const leaf = await startNats(bin, join(dir.path, 'leaf.conf'), [
      'server_name: leaf', `listen: 127.0.0.1:${leafPort}`,
      `jetstream { store_dir: "${join(dir.path, 'leaf')}", domain: leaf, max_file_store: 4GB, max_memory_store: 256MB }`,
      // The hub is down for now: the leaf retries every second, as a bridge waiting for its cloud.
      `leafnodes { reconnect: 1, remotes: [ { url: "nats-leaf://127.0.0.1:${hubLeafPort}" } ] }`
    ].join('\n'), leafPort)
    procs.push(leaf)
    pin(leaf.child.pid, EDGE_CORE)
    const lnc = await connect({ servers: `127.0.0.1:${leafPort}` })
    conns.push(lnc)
    const ljsm = await jetstreamManager(lnc)
    await ljsm.streams.add({ name: 'EDGE', subjects: ['devices.>'], storage: 'file' as never, max_msgs: -1, max_bytes: -1 })
    await fillEdge(lnc, ljsm, n, payloadBytes)

    const hub = await startNats(bin, join(dir.path, 'hub.conf'), [
      'server_name: hub', `listen: 127.0.0.1:${hubPort}`,
      `jetstream { store_dir: "${join(dir.path, 'hub')}", domain: hub, max_file_store: 4GB, max_memory_store: 256MB }`,
      `leafnodes { listen: 127.0.0.1:${hubLeafPort} }`
    ].join('\n'), hubPort)
    procs.push(hub)
    pin(hub.child.pid, CLOUD_CORE)
    const hnc = await connect({ servers: `127.0.0.1:${hubPort}` })
    conns.push(hnc)
    const hjsm = await jetstreamManager(hnc)
    // The link is up when the leaf's JetStream API answers through the hub.
    await waitFor('leaf linked to the hub', async () => {
      try { await hnc.request('$JS.leaf.API.INFO', undefined, { timeout: 200 }); return true } catch { return false }
    }, 15_000, 50)
    const t0 = performance.now()
    await hjsm.streams.add({ name: 'HUB', storage: 'file' as never, max_msgs: -1, max_bytes: -1, sources: [{ name: 'EDGE', external: { api: '$JS.leaf.API', deliver: '' } }] } as never)
    let received = 0
    try {
      await waitFor('HUB holds the backlog', async () => (received = await streamMessages(hjsm, 'HUB')) >= n, 300_000, 20)
    } catch {
      return { seconds: NaN, received }
    }
    return { seconds: (performance.now() - t0) / 1000, received }
  } finally {
    for (const c of conns) await c.close().catch(() => {})
    for (const p of procs.reverse()) await p.stop()
    await dir.remove()
  }
}

// `node --import tsx test/bench/bridge-nats-peer.ts [n]` runs the drain alone.
if (process.argv[1] !== undefined && process.argv[1].endsWith('bridge-nats-peer.ts')) {
  const bin = natsServerPath()
  if (bin === undefined) throw new Error('nats-server not installed')
  natsLeafDrain(bin, Number(process.argv[2] ?? 100_000), 100).then((r) => { console.log(r) }, (err) => { console.error(err); process.exitCode = 1 })
}
