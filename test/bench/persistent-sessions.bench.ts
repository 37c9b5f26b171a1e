// Persistent sessions: 100 offline persistent QoS 1 subscribers, then 10,000 QoS 1 messages, then
// all 100 reconnect and drain. Ours (commitlog cursors + LevelDB metadata, durable acks) against
// stock aedes 1.2 with aedes-persistence-level (one LevelDB packet write per message per
// subscriber), measured in the same run.
//
// The broker runs in a child process pinned to CPU 0 (`taskset`), the clients in this process on
// CPU 1 (when taskset and 2 CPUs exist), so the load generator does not eat the broker's core.
//   publish: from the first PUBLISH until every PUBACK has arrived AND the broker has routed every
//            message (aedes' 'publish' event: after the offline enqueue). Stock aedes acks QoS 1
//            before storing (DESIGN.md §4), so the PUBACKs alone would not cover its writes.
//   drain:   from the first reconnect until every subscriber has received all 10,000.
// Standalone: `node --import tsx test/bench/persistent-sessions.bench.ts`; env BENCH_RUNS,
// BENCH_SUBSCRIBERS, BENCH_MESSAGES scale it down or up.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir, cpus } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import mqtt, { type MqttClient } from 'mqtt'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 100)
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 10_000)
const PAYLOAD_BYTES = 64
// PUBLISHes in flight from the publisher: enough to keep the broker busy, bounded so the
// publisher's own queue does not dominate.
const PUBLISH_WINDOW = 500
const TOPIC = 'bench/sessions/t'
const THIS_FILE = fileURLToPath(import.meta.url)

type Kind = 'tributary' | 'aedes-level'

interface Result { publishMs: number, drainMs: number, complete: boolean, delivered: number }

// ------------------------------------------------------------------ broker child

async function brokerMain (kind: Kind, dir: string, expected: number): Promise<void> {
  let routed = 0
  let onPublish: (packet: { topic: string }) => void = () => {}
  let stop: () => Promise<void>
  let handle: (socket: import('node:net').Socket) => void
  if (kind === 'tributary') {
    const { CommitLog } = await import('../../src/commitlog/index.js')
    const { LevelMetaStore } = await import('../../src/meta/level.js')
    const { createPersistence } = await import('../../src/mqtt/persistence.js')
    const { createBroker } = await import('../../src/mqtt/broker.js')
    const { recordAppended } = await import('../../src/mqtt/record-offsets.js')
    const { silentLogger } = await import('../../src/log/index.js')
    const logger = silentLogger()
    const log = await CommitLog.open({ dir: join(dir, 'log'), segmentBytes: 64 << 20, flushPolicy: 'interval', flushIntervalMs: 10, maxRecordBytes: 1 << 20, retentionBytes: 0, retentionMs: 0, log: logger })
    const meta = await LevelMetaStore.open(join(dir, 'meta'))
    const persistence = createPersistence({ log, meta, logger })
    const broker = await createBroker({
      log,
      persistence,
      logger,
      onAppended: recordAppended,
      config: { maxPacketBytes: 1 << 20, maxConnections: 10_000, inflightWindow: 1000, maxTopicLength: 256, maxTopicLevels: 16, connectTimeoutMs: 10_000 }
    })
    broker.aedes.on('publish', (packet) => { onPublish(packet) })
    handle = broker.handle
    stop = async () => { await broker.close(); await persistence.destroy(); await meta.close(); await log.close() }
  } else {
    const { Aedes } = await import('aedes')
    const { Level } = await import('level')
    // (untyped CommonJS package: imported by name so the type checker does not look for types)
    const peerModule = 'aedes-persistence-level'
    const levelPersistence = (await import(peerModule) as { default: (db: unknown) => unknown }).default
    const db = new Level(join(dir, 'aedes-level'))
    const aedes = await Aedes.createBroker({ persistence: levelPersistence(db) as never })
    aedes.on('publish', (packet) => { onPublish(packet) })
    handle = aedes.handle as unknown as typeof handle
    stop = async () => { await new Promise<void>((resolve) => { aedes.close(() => resolve()) }); await db.close() }
  }
  onPublish = (packet) => {
    if (packet.topic !== TOPIC) return
    routed++
    if (routed === expected) process.stdout.write('routed\n')
  }
  const server = createServer(handle)
  server.listen(0, '127.0.0.1', () => {
    const address = server.address()
    process.stdout.write(`port ${typeof address === 'object' && address !== null ? address.port : 0}\n`)
  })
  process.on('SIGTERM', () => {
    server.close()
    stop().finally(() => process.exit(0))
  })
}

// ------------------------------------------------------------------ load generator

interface BrokerProc { child: ChildProcess, port: number, routed: Promise<void> }

async function startBroker (kind: Kind, dir: string): Promise<BrokerProc> {
  const pin = canPin() ? ['taskset', '-c', '0'] : []
  const args = [...pin, process.execPath, '--import', 'tsx', THIS_FILE, '--broker', kind, dir, String(MESSAGES)]
  const child = spawn(args[0] as string, args.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  let resolveRouted: () => void = () => {}
  const routed = new Promise<void>((resolve) => { resolveRouted = resolve })
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`broker exited with ${code}`)))
    lines.on('line', (line) => {
      if (line.startsWith('port ')) resolve(Number(line.slice(5)))
      else if (line === 'routed') resolveRouted()
    })
  })
  return { child, port, routed }
}

async function stopBroker (b: BrokerProc): Promise<void> {
  if (b.child.exitCode !== null) return
  await new Promise<void>((resolve) => { b.child.once('exit', () => resolve()); b.child.kill('SIGTERM') })
}

function canPin (): boolean {
  return cpus().length >= 2 && spawnSync('taskset', ['-c', '1', 'true']).status === 0
}

async function connect (port: number, clientId: string, clean: boolean): Promise<MqttClient> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId, clean, protocolVersion: 4, reconnectPeriod: 0, keepalive: 600, connectTimeout: 60_000 })
  await new Promise<void>((resolve, reject) => { client.once('connect', () => resolve()); client.once('error', reject) })
  return client
}

async function end (client: MqttClient): Promise<void> {
  await new Promise<void>((resolve) => client.end(false, {}, () => resolve()))
}

async function publishAll (client: MqttClient, count: number): Promise<void> {
  const payload = Buffer.alloc(PAYLOAD_BYTES, 0x61)
  await new Promise<void>((resolve, reject) => {
    let sent = 0
    let acked = 0
    const onAck = (err?: Error): void => {
      if (err != null) { reject(err); return }
      acked++
      if (acked === count) resolve()
      else if (sent < count) send()
    }
    const send = (): void => { sent++; client.publish(TOPIC, payload, { qos: 1 }, onAck) }
    while (sent < Math.min(PUBLISH_WINDOW, count)) send()
  })
}

async function oneRun (kind: Kind): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-sessions-'))
  const broker = await startBroker(kind, dir)
  try {
    const ids: string[] = []
    for (let i = 0; i < SUBSCRIBERS; i++) ids.push(`bench-sub-${i}`)
    // Subscribed, then offline.
    await Promise.all(ids.map(async (id) => {
      const c = await connect(broker.port, id, false)
      await c.subscribeAsync(TOPIC, { qos: 1 })
      await end(c)
    }))
    const pub = await connect(broker.port, 'bench-pub', true)
    const publishStart = performance.now()
    await Promise.all([publishAll(pub, MESSAGES), broker.routed])
    const publishMs = performance.now() - publishStart
    await end(pub)

    const counts = new Array<number>(SUBSCRIBERS).fill(0)
    const clients: MqttClient[] = []
    const drainStart = performance.now()
    let drainMs = 0
    await new Promise<void>((resolve, reject) => {
      let done = 0
      ids.forEach((id, i) => {
        const c = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: id, clean: false, protocolVersion: 4, reconnectPeriod: 0, keepalive: 600, connectTimeout: 60_000 })
        clients.push(c)
        c.on('error', reject)
        c.on('message', () => {
          counts[i]++
          if (counts[i] === MESSAGES) {
            done++
            if (done === SUBSCRIBERS) { drainMs = performance.now() - drainStart; resolve() }
          }
        })
      })
    })
    // Let duplicates (if any) arrive before counting.
    await new Promise((resolve) => setTimeout(resolve, 300))
    await Promise.all(clients.map(end))
    const delivered = counts.reduce((a, b) => a + b, 0)
    return { publishMs, drainMs, complete: counts.every((n) => n === MESSAGES), delivered }
  } finally {
    await stopBroker(broker)
    rmSync(dir, { recursive: true, force: true })
  }
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] as number
}

// Pins this process (the clients) to CPU 1 for the run and restores its affinity afterwards
// (the bench runner runs other benchmarks in this process).
function pinSelf (): () => void {
  if (!canPin()) return () => {}
  const before = spawnSync('taskset', ['-p', '-c', String(process.pid)], { encoding: 'utf8' }).stdout.split(':').pop()?.trim() ?? ''
  spawnSync('taskset', ['-p', '-c', '1', String(process.pid)])
  return () => { if (before !== '') spawnSync('taskset', ['-p', '-c', before, String(process.pid)]) }
}

export async function run (): Promise<string> {
  const unpin = pinSelf()
  try {
    return await measure()
  } finally {
    unpin()
  }
}

async function measure (): Promise<string> {
  const results: Record<Kind, Result[]> = { tributary: [], 'aedes-level': [] }
  for (let r = 0; r < RUNS; r++) {
    for (const kind of ['tributary', 'aedes-level'] as Kind[]) {
      const res = await oneRun(kind)
      results[kind].push(res)
      console.error(`persistent-sessions run ${r + 1}/${RUNS} ${kind}: publish ${res.publishMs.toFixed(0)} ms, drain ${res.drainMs.toFixed(0)} ms, delivered ${res.delivered}${res.complete ? '' : ' (INCOMPLETE)'}`)
    }
  }
  const row = (kind: Kind): { pub: number, drain: number, line: string } => {
    const rs = results[kind]
    const pub = median(rs.map((x) => x.publishMs))
    const drain = median(rs.map((x) => x.drainMs))
    const total = median(rs.map((x) => x.publishMs + x.drainMs))
    const spread = rs.map((x) => `${(x.publishMs / 1000).toFixed(2)}+${(x.drainMs / 1000).toFixed(2)}`).join(', ')
    return { pub, drain, line: `| ${kind === 'tributary' ? 'Tributary (commitlog cursors + LevelDB meta)' : 'aedes 1.2 + aedes-persistence-level 9.2'} | ${(pub / 1000).toFixed(2)} | ${(drain / 1000).toFixed(2)} | ${(total / 1000).toFixed(2)} | ${rs.every((x) => x.complete) ? 'yes' : 'NO'} | ${spread} |` }
  }
  const ours = row('tributary')
  const peer = row('aedes-level')
  const oursTotal = median(results.tributary.map((x) => x.publishMs + x.drainMs))
  const peerTotal = median(results['aedes-level'].map((x) => x.publishMs + x.drainMs))
  return [
    `### Persistent sessions: ${SUBSCRIBERS} offline QoS 1 subscribers, ${MESSAGES.toLocaleString('en-US')} QoS 1 messages of ${PAYLOAD_BYTES} B, then all reconnect and drain`,
    '',
    `Medians of ${RUNS} runs; broker pinned to CPU 0, clients on CPU 1${canPin() ? '' : ' (taskset unavailable: not pinned)'}.`,
    '',
    '| broker | publish s | drain s | total s | all delivered | runs (publish+drain s) |',
    '| --- | --- | --- | --- | --- | --- |',
    ours.line,
    peer.line,
    '',
    `Ratio (aedes-persistence-level / Tributary): publish ${(peer.pub / ours.pub).toFixed(1)}x, drain ${(peer.drain / ours.drain).toFixed(1)}x, total ${(peerTotal / oursTotal).toFixed(1)}x.`
  ].join('\n')
}

if (process.argv[2] === '--broker') {
  await brokerMain(process.argv[3] as Kind, process.argv[4] as string, Number(process.argv[5]))
} else if (process.argv[1] !== undefined && process.argv[1] === THIS_FILE) {
  console.log(await run())
}
