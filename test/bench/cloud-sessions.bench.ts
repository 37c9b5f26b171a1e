// Persistent sessions of cloud subscribers (cloud/sessions/): S offline clean=false subscribers
// of up/edge-a/#, then N records appended to the embedded cloud store (written once, whatever S
// is: session state is a cursor, not a copy per subscriber), then all S reconnect and drain.
//   drain: from the first reconnect until every subscriber has received all N (QoS 1, acked).
// In one process (cloud node + clients share a core or two): a floor for what a node sustains,
// not a peer comparison. Standalone: `node --import tsx test/bench/cloud-sessions.bench.ts`
// (or `npm run bench -- cloud-sessions`);
// env BENCH_RUNS, BENCH_SUBSCRIBERS, BENCH_MESSAGES.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt, { type MqttClient } from 'mqtt'
import { loadConfig } from '../../src/config/index.js'
import { cloudSchema } from '../../src/config/cloud.js'
import { silentLogger } from '../../src/log/index.js'
import { startCloudNode, type CloudNode } from '../../cloud/node.js'
import type { Lease } from '../../cloud/store/types.js'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 100)
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 10_000)
const BATCH = 1000 // records per store append (a bridge batch)
const PAYLOAD = Buffer.alloc(64, 0x61)

async function connect (port: number, id: string): Promise<MqttClient> {
  return await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: id, clean: false, reconnectPeriod: 0, protocolVersion: 4 })
}

async function once (): Promise<{ drainMs: number, deliveriesPerS: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-cloud-sessions-'))
  const config = loadConfig(cloudSchema, { argv: ['--data-dir', dir, '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--bridge-host', '127.0.0.1', '--bridge-port', '0', '--http-port', '-1'], env: {} })
  let node: CloudNode | undefined
  try {
    node = await startCloudNode({ config, logger: silentLogger() })
    const port = node.mqttPort
    for (let i = 0; i < SUBSCRIBERS; i++) {
      const c = await connect(port, `sub-${i}`)
      await c.subscribeAsync('up/edge-a/#', { qos: 1 })
      await c.endAsync()
    }
    const acquired = await node.store.acquireLease('edge-a', 'bench', 600_000, Date.now())
    if (acquired.status !== 'ok') throw new Error('lease')
    const lease: Lease = acquired.lease
    for (let from = 0; from < MESSAGES; from += BATCH) {
      const to = Math.min(MESSAGES, from + BATCH)
      const records = []
      for (let i = from; i < to; i++) records.push({ offset: i, nextOffset: i + 1, timestampMs: Date.now(), qos: 1 as const, retain: false, topic: `d/${i % 10}/t`, payload: PAYLOAD })
      await node.store.appendBatch('edge-a', { fromOffset: from, toOffset: to, records }, lease)
    }
    let left = SUBSCRIBERS
    let resolveAll: () => void = () => {}
    const all = new Promise<void>((resolve) => { resolveAll = resolve })
    const clients: MqttClient[] = []
    const started = performance.now()
    await Promise.all(Array.from({ length: SUBSCRIBERS }, async (_, i) => {
      const c = await connect(port, `sub-${i}`)
      clients.push(c)
      let got = 0
      c.on('message', () => { if (++got === MESSAGES && --left === 0) resolveAll() })
    }))
    await all
    const drainMs = performance.now() - started
    await Promise.all(clients.map(async (c) => { await c.endAsync() }))
    return { drainMs, deliveriesPerS: Math.round(SUBSCRIBERS * MESSAGES / (drainMs / 1000)) }
  } finally {
    await node?.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const median = (xs: number[]): number => { const a = [...xs].sort((x, y) => x - y); return a[Math.floor(a.length / 2)] }

export async function run (): Promise<string> {
  const results: Array<{ drainMs: number, deliveriesPerS: number }> = []
  for (let r = 0; r < RUNS; r++) results.push(await once())
  const drain = median(results.map((x) => x.drainMs))
  return [
    `### Cloud persistent sessions: ${SUBSCRIBERS} offline QoS 1 subscribers, ${MESSAGES.toLocaleString('en-US')} stored records, all reconnect and drain`,
    '',
    `Embedded store, cloud node and clients in one process. Median of ${RUNS} runs: drain ${(drain / 1000).toFixed(2)} s, ` +
      `${Math.round(SUBSCRIBERS * MESSAGES / (drain / 1000)).toLocaleString('en-US')} deliveries/s (runs: ${results.map((x) => (x.drainMs / 1000).toFixed(2)).join(', ')} s). ` +
      'Session state written per message and subscriber: none (a cursor per session).'
  ].join('\n')
}

if (process.argv[1] !== undefined && process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(await run())
}
