// Cloud cluster ingest (issue 5): 100 replicating edges into (a) one cloud node on the embedded
// store, (b) one and (c) two stateless cloud nodes on a 3-node NATS JetStream cluster (R3), all
// in the same run on this machine.
//
// The 100 edges are simulated bridge clients in this process (100 real `tributary edge`
// processes would need ~100 x 60 MB and their own CPU): each speaks the real bridge protocol over
// its own WebSocket (HELLO -> WELCOME -> BATCH frames, at most WINDOW unacked, ACKs), replaying
// batches encoded before the clock starts, so the generator costs little CPU. The rate is
// records acked by the cloud (durable in the store) per second, first send to last ack.
import { readFileSync } from 'node:fs'
import { WebSocket } from 'ws'
import { startCloudProcess, type CloudProcess } from '../helpers/cloud-process.js'
import { natsServerPath, startNatsCluster, type NatsCluster } from '../helpers/nats-cluster.js'
import { tempDir } from '../helpers/net.js'
import { decodeFrame, encodeFrame, FrameType, type BridgeRecord } from '../../src/protocol/bridge-frames.js'

const EDGES = 100
const RECORDS_PER_BATCH = 500
const BATCHES_PER_EDGE = 10 // 100 edges x 5,000 records = 500,000 records per configuration
const PAYLOAD_BYTES = 100
const WINDOW = 4 // unacked batches per edge, like the edge bridge's window

interface EdgeLoad { id: string, frames: Buffer[], lastTo: number }

function prepareEdges (): EdgeLoad[] {
  const payload = Buffer.alloc(PAYLOAD_BYTES, 7)
  const edges: EdgeLoad[] = []
  for (let e = 0; e < EDGES; e++) {
    const id = `edge-${e}`
    const frames: Buffer[] = []
    let offset = 0
    for (let b = 0; b < BATCHES_PER_EDGE; b++) {
      const records: BridgeRecord[] = []
      const from = offset
      for (let r = 0; r < RECORDS_PER_BATCH; r++) {
        const next = offset + 150
        records.push({ offset, nextOffset: next, timestampMs: Date.now(), qos: 1, retain: false, topic: `devices/d${r % 50}/telemetry`, payload })
        offset = next
      }
      frames.push(encodeFrame({ type: FrameType.BATCH, edgeId: id, fromOffset: from, toOffset: offset, records }))
    }
    edges.push({ id, frames, lastTo: offset })
  }
  return edges
}

// One simulated edge: connects, sends its frames with a window, resolves when the last is acked.
async function replicate (url: string, edge: EdgeLoad, started: Promise<void>): Promise<void> {
  const ws = new WebSocket(url, { perMessageDeflate: false })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => { ws.send(encodeFrame({ type: FrameType.HELLO, edgeId: edge.id, token: 't', checkpoint: 0, lastDownlinkSeq: 0 })) })
    ws.once('error', reject)
    ws.once('message', (data) => {
      const f = decodeFrame(data as Buffer)
      if (f.ok && f.frame.type === FrameType.WELCOME) resolve()
      else reject(new Error(`${edge.id}: no WELCOME: ${JSON.stringify(f)}`))
    })
  })
  await started
  await new Promise<void>((resolve, reject) => {
    let sent = 0
    let acked = 0
    const pump = (): void => { while (sent < edge.frames.length && sent - acked < WINDOW) ws.send(edge.frames[sent++]) }
    ws.on('message', (data) => {
      const f = decodeFrame(data as Buffer)
      if (!f.ok) { reject(new Error(f.error)); return }
      if (f.frame.type === FrameType.ACK) {
        acked++
        if (f.frame.committedOffset >= edge.lastTo) { resolve(); return }
        pump()
      } else if (f.frame.type === FrameType.ERROR) reject(new Error(`${edge.id}: ${f.frame.code} ${f.frame.message}`))
    })
    ws.once('close', (code) => { reject(new Error(`${edge.id}: closed ${code}`)) })
    pump()
  })
  ws.removeAllListeners('close')
  ws.close()
}

// CPU seconds (user + system) a process has used so far, from /proc (Linux).
function cpuSeconds (pid: number | undefined): number {
  if (pid === undefined) return 0
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime in clock ticks (100/s)
  } catch { return 0 }
}

interface Measured { seconds: number, rate: number, cpu: string }

async function measure (nodes: CloudProcess[], edges: EdgeLoad[], nats?: NatsCluster): Promise<Measured> {
  let go = (): void => {}
  const started = new Promise<void>((resolve) => { go = resolve })
  const runs = edges.map(async (e, i) => { await replicate(nodes[i % nodes.length].bridgeUrl, e, started) })
  // Every edge is connected (WELCOME) before the clock starts.
  await new Promise((resolve) => setTimeout(resolve, 1500))
  const cloudPids = nodes.map((n) => n.child.pid)
  const natsPids = nats?.nodes.map((n) => n.pid) ?? []
  const before = { cloud: cloudPids.map(cpuSeconds), nats: natsPids.map(cpuSeconds), gen: process.cpuUsage() }
  const t0 = performance.now()
  go()
  await Promise.all(runs)
  const seconds = (performance.now() - t0) / 1000
  const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0)
  const cloudCpu = sum(cloudPids.map(cpuSeconds)) - sum(before.cloud)
  const natsCpu = sum(natsPids.map(cpuSeconds)) - sum(before.nats)
  const g = process.cpuUsage(before.gen)
  const genCpu = (g.user + g.system) / 1e6
  // Cores busy on average during the run, per component.
  const cpu = `cloud ${(cloudCpu / seconds).toFixed(2)}, nats ${(natsCpu / seconds).toFixed(2)}, generator ${(genCpu / seconds).toFixed(2)}`
  return { seconds, rate: (EDGES * BATCHES_PER_EDGE * RECORDS_PER_BATCH) / seconds, cpu }
}

function tokenArgs (): string[] {
  const out: string[] = []
  for (let e = 0; e < EDGES; e++) out.push('--edge-token', `edge-${e}=t`)
  return out
}

async function cloudNode (extra: string[]): Promise<{ proc: CloudProcess, remove: () => Promise<void> }> {
  const dir = await tempDir('bench-cluster')
  const proc = await startCloudProcess(['--data-dir', dir.path, '--mqtt-port', '0', '--bridge-port', '0', '--http-port', '-1', '--log-level', 'warn', ...tokenArgs(), ...extra], 30_000)
  return { proc, remove: async () => { await proc.kill(); await dir.remove() } }
}

export async function run (): Promise<string> {
  const edges = prepareEdges()
  const total = EDGES * BATCHES_PER_EDGE * RECORDS_PER_BATCH
  const rows: string[] = []
  const row = (name: string, r: Measured): void => {
    rows.push(`| ${name} | ${r.seconds.toFixed(2)} s | ${Math.round(r.rate).toLocaleString('en-US')} | ${r.cpu} |`)
    console.error(`${name}: ${r.seconds.toFixed(2)} s, ${Math.round(r.rate)} records/s, cores: ${r.cpu}`)
  }

  const embedded = await cloudNode([])
  try { row('embedded store, 1 cloud node', await measure([embedded.proc], edges)) } finally { await embedded.remove() }

  if (natsServerPath() === undefined) {
    rows.push('| JetStream | nats-server not installed | - | - |')
  } else {
    let nats: NatsCluster | undefined
    try {
      nats = await startNatsCluster({ size: 3, maxFileBytes: 4 * 1024 ** 3 })
      const store = ['--store', nats.urls.join(',')]
      const one = await cloudNode([...store, '--store-prefix', 'B1', '--node-id', 'b1'])
      try { row('JetStream R3 (3 nats-server), 1 cloud node', await measure([one.proc], edges, nats)) } finally { await one.remove() }
      const a = await cloudNode([...store, '--store-prefix', 'B2', '--node-id', 'b2a'])
      const b = await cloudNode([...store, '--store-prefix', 'B2', '--node-id', 'b2b'])
      try { row('JetStream R3 (3 nats-server), 2 cloud nodes', await measure([a.proc, b.proc], edges, nats)) } finally { await a.remove(); await b.remove() }
    } finally {
      await nats?.stop()
    }
  }
  return [
    '### Cloud cluster ingest (100 edges)',
    '',
    `${EDGES} simulated edges (real bridge protocol over WebSocket, batches of ${RECORDS_PER_BATCH} records of ${PAYLOAD_BYTES} B, window ${WINDOW}), ${total.toLocaleString('en-US')} records per row, acked = durable in the store.`,
    '',
    '| store / nodes | time | records/s | cores busy (avg over the run) |',
    '|---|---|---|---|',
    ...rows
  ].join('\n')
}

// `node --import tsx test/bench/cluster.bench.ts` runs this file alone.
if (import.meta.url === `file://${process.argv[1]}`) console.log(await run())
