// Broker comparison with the simulator's load mode: the edge broker (flush policy interval),
// stock aedes 1.2 (in-memory persistence) and Debian mosquitto, each pinned to core 0 with the
// generator on core 1, 64-byte payloads, RUNS runs per measure, medians, ratios vs both peers.
// Standalone: `node --import tsx test/bench/broker.bench.ts` (needs a fresh `npx tsup`).
import { pathToFileURL } from 'node:url'
import type { LoadReport } from '../../firmware-sim/load/run.js'
import type { IdleReport } from '../../firmware-sim/load/idle.js'
import type { SimReport } from '../../firmware-sim/report.js'
import { FLOORS, MOSQUITTO_TUNING, cpuSeconds, rssBytes, simReport, startBroker, type BrokerName, type BrokerProc, type FloorName } from './broker-procs.js'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
// Subsets while iterating: BENCH_BROKERS=edge,aedes and BENCH_CELLS=idle (cells: q0, q1,
// latency, fanout, idle, generator); the table shows n/a for what was not measured.
// node-raw and node-mqtt-packet are latency floors (node-floor.ts), measured in the latency cell only.
const BROKERS = (process.env.BENCH_BROKERS ?? `edge,aedes,mosquitto,${FLOORS.join(',')}`).split(',') as BrokerName[]
const isFloor = (name: BrokerName): boolean => (FLOORS as readonly string[]).includes(name)
const CELLS = new Set((process.env.BENCH_CELLS ?? 'q0,q1,latency,fanout,idle').split(','))
const IDLE_CONNECTIONS = Number(process.env.BENCH_IDLE_CONNECTIONS ?? 10_000)

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

type Measures = Record<string, number[]>
interface BrokerResult { measures: Measures, error?: string, notes?: string[] }

// Every load measure first runs 1 s at the same load unmeasured (--warmup): JIT compilation and
// first allocations in the Node brokers and in the generator otherwise land in the figures (a
// single 100 ms compile pause at the start is 2% of a 5 s latency run, i.e. all of its p99).
const LOAD = ['--payload-bytes', '64', '--drain-timeout', '20s', '--warmup', '1s']
// Idle connections opened and closed before the memory baseline is taken, so that one-time
// costs of the first connections (mqtt-packet's lazily built number cache, ~6 MB in a Node
// broker; compiled code) do not count as memory per connection.
const IDLE_WARMUP_CONNECTIONS = 100

// Each measurement gets a fresh broker, so a backlog left by one (QoS 0 overload queues in
// the broker) cannot slow the next. A failed measurement is noted and the bench goes on.
// One call measures one run of every cell for one broker; run() interleaves the brokers run by
// run (edge, aedes, mosquitto, edge, ...), so that a noisy minute of this shared machine lands
// on every broker's runs alike instead of on all runs of one broker.
async function measureBrokerRun (name: BrokerName, run: number, result: BrokerResult, log: (s: string) => void): Promise<void> {
  const m = result.measures
  const notes = result.notes ?? (result.notes = [])
  const add = (k: string, v: number): void => { (m[k] ??= []).push(v) }
  const withBroker = async (what: string, fn: (b: BrokerProc) => Promise<void>): Promise<boolean> => {
    let b: BrokerProc
    try { b = await startBroker(name) } catch (err) { notes.push(`cannot start: ${(err as Error).message.split('\n')[0]}`); return false }
    try { await fn(b); return true } catch (err) {
      notes.push(`${what}: ${(err as Error).message.split('\n')[0].slice(0, 300)}`)
      return true
    } finally { await b.stop() }
  }
  const measure = async (cell: string, what: string, fn: (b: BrokerProc) => Promise<void>): Promise<boolean> =>
    CELLS.has(cell) && (cell === 'latency' || !isFloor(name)) ? await withBroker(what, fn) : true
  {
    log(`${name}: run ${run + 1}/${RUNS}`)
    const ok = await measure('q0', 'QoS 0 fan-in', async (b) => {
      const c0 = busy(b)
      const q0 = await simReport<LoadReport>(['--broker', b.url, '--max-rate', '--qos', '0', '--connections', '4', '--subscribers', '1', '--duration', '3s', ...LOAD])
      add('q0pub', q0.publishedPerSec); add('q0del', q0.deliveriesPerSec); add('q0cpu', q0.generatorCpuCores); add('q0bcpu', c0())
    })
    if (!ok) { result.error = notes.join('; '); return }
    await measure('q1', 'QoS 1 fan-in', async (b) => {
      const c1 = busy(b)
      const q1 = await simReport<LoadReport>(['--broker', b.url, '--max-rate', '--qos', '1', '--window', '64', '--connections', '4', '--subscribers', '1', '--duration', '3s', ...LOAD])
      add('q1cpu', q1.generatorCpuCores); add('q1bcpu', c1())
      add('q1ack', q1.ackedPerSec); add('q1del', q1.deliveriesPerSec); add('q1lost', q1.undelivered)
    })
    await measure('latency', 'latency', async (b) => {
      const lat = await simReport<LoadReport>(['--broker', b.url, '--load-rate', '5000', '--qos', '1', '--window', '64', '--connections', '4', '--subscribers', '1', '--duration', '5s', ...LOAD])
      add('p50', lat.latencyMs.p50); add('p99', lat.latencyMs.p99); add('p999', lat.latencyMs.p999)
      // Pacing ticks that found the window full: the broker, not the generator, held the rate.
      add('windowFull', lat.windowFullTicks)
    })
    // Fan-out: 2,000 msgs/s x 100 subscribers = 200,000 deliveries/s asked, above what these
    // brokers deliver, so deliveries/s measures the broker.
    await measure('fanout', 'fan-out', async (b) => {
      const fan = await simReport<LoadReport>(['--broker', b.url, '--load-rate', '2000', '--qos', '0', '--connections', '1', '--subscribers', '100', '--duration', '2s', ...LOAD])
      add('fanout', fan.deliveriesPerSec)
    })
    // Idle connections: RSS sampled while the connections are held.
    await measure('idle', 'idle connections', async (b) => {
      await simReport<IdleReport>(['--broker', b.url, '--idle-connections', String(IDLE_WARMUP_CONNECTIONS), '--ramp', '5000', '--duration', '0.5s'])
      // Twice on the same broker: first ramp ("cold": what a fresh process grows by, including
      // its heap's young generation growing to size under the connection storm, a fixed cost of
      // a Node process), then, once those connections are closed, a second ramp ("warm": the
      // growth of a broker that has served connections before, i.e. per-connection memory).
      for (const key of ['idleKiB', 'idleWarmKiB']) {
        await new Promise((resolve) => setTimeout(resolve, 500))
        const before = rssBytes(b.pid)
        let peak = before
        const idle = await simReport<IdleReport>(['--broker', b.url, '--idle-connections', String(IDLE_CONNECTIONS), '--ramp', '5000', '--duration', '3s'], () => { peak = Math.max(peak, rssBytes(b.pid)) })
        add(key, (peak - before) / Math.max(1, idle.connected) / 1024)
        if (key === 'idleKiB') add('rampPerSec', idle.connectsPerSec)
      }
    })
  }
}

// Cores the broker process used from now until the returned function is called (a whole sim
// run: warm-up, measured window and drain), so a reader can tell which side was the limit.
function busy (b: BrokerProc): () => number {
  const cpu0 = cpuSeconds(b.pid); const t0 = performance.now()
  return () => (cpuSeconds(b.pid) - cpu0) / ((performance.now() - t0) / 1000)
}

const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US')
const fmtMs = (n: number): string => n.toFixed(2)
const fmtKiB = (n: number): string => n.toFixed(1)

export async function run (): Promise<string> {
  const log = (s: string): void => { process.stderr.write(`[broker.bench] ${s}\n`) }
  const results: Partial<Record<BrokerName, BrokerResult>> = {}
  for (const b of BROKERS) results[b] = { measures: {}, notes: [] }
  for (let run = 0; run < RUNS; run++) {
    for (const b of BROKERS) {
      const r = results[b] as BrokerResult
      if (r.error === undefined) await measureBrokerRun(b, run, r, log)
    }
  }

  const cell = (b: BrokerName, k: string, f: (n: number) => string): string => {
    const r = results[b]
    if (r === undefined || r.error !== undefined || r.measures[k] === undefined) return 'n/a'
    return `${f(median(r.measures[k]))} <sub>(${r.measures[k].map(f).join(' / ')})</sub>`
  }
  const ratio = (a: BrokerName, b: BrokerName, k: string): string => {
    const x = results[a]?.measures[k]; const y = results[b]?.measures[k]
    if (x === undefined || y === undefined || median(y) === 0) return 'n/a'
    return `${(median(x) / median(y)).toFixed(2)}x`
  }
  const rows: Array<[string, string, (n: number) => string]> = [
    ['QoS 0 fan-in, published msgs/s (4 publishers)', 'q0pub', fmtInt],
    ['QoS 0 fan-in, delivered msgs/s (1 subscriber)', 'q0del', fmtInt],
    ['QoS 1 fan-in, acked msgs/s (window 64 x 4)', 'q1ack', fmtInt],
    ['QoS 1 fan-in, delivered msgs/s', 'q1del', fmtInt],
    ['QoS 1 fan-in, acked but not delivered (3 s run)', 'q1lost', fmtInt],
    ['QoS 1 at 5,000 msgs/s, latency p50 ms', 'p50', fmtMs],
    ['QoS 1 at 5,000 msgs/s, latency p99 ms', 'p99', fmtMs],
    ['QoS 1 at 5,000 msgs/s, latency p99.9 ms', 'p999', fmtMs],
    ['QoS 1 at 5,000 msgs/s, pacing ticks with the window full (0 = rate offered throughout)', 'windowFull', fmtInt],
    ['Fan-out to 100 subscribers, deliveries/s', 'fanout', fmtInt],
    [`Idle connections: RSS KiB per connection at ${fmtInt(IDLE_CONNECTIONS)}, first ramp (fresh broker)`, 'idleKiB', fmtKiB],
    [`Idle connections: RSS KiB per connection at ${fmtInt(IDLE_CONNECTIONS)}, second ramp (same broker, first ones closed)`, 'idleWarmKiB', fmtKiB],
    ['Idle connections opened (ramp 5,000/s asked), per s', 'rampPerSec', fmtInt],
    ['QoS 0 fan-in: broker CPU (cores, whole run)', 'q0bcpu', (n) => n.toFixed(2)],
    ['... generator CPU during QoS 0 fan-in (cores)', 'q0cpu', (n) => n.toFixed(2)],
    ['QoS 1 fan-in: broker CPU (cores, whole run)', 'q1bcpu', (n) => n.toFixed(2)],
    ['... generator CPU during QoS 1 fan-in (cores)', 'q1cpu', (n) => n.toFixed(2)]
  ]
  const lines = [
    '### Broker comparison',
    '',
    `${RUNS} runs per cell, the brokers interleaved run by run, median first, then each run. Broker on core 0, generator on core 1, 64-byte payloads, loopback, 1 s unmeasured warm-up per load measure. Peers tuned: mosquitto \`${MOSQUITTO_TUNING.join('`, `')}\`; stock aedes with TCP_NODELAY; the edge with \`--flush-policy interval\` (durable acks).`,
    '',
    '| measure | edge (interval) | stock aedes 1.2 | mosquitto | edge / aedes | edge / mosquitto |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows.map(([label, k, f]) => `| ${label} | ${cell('edge', k, f)} | ${cell('aedes', k, f)} | ${cell('mosquitto', k, f)} | ${ratio('edge', 'aedes', k)} | ${ratio('edge', 'mosquitto', k)} |`)
  ]
  for (const b of BROKERS) {
    const r = results[b]
    if (r?.error !== undefined) lines.push('', `${b}: not measured: ${r.error}`)
    else for (const n of r?.notes ?? []) lines.push('', `${b}: a run failed: ${n}`)
  }
  const floors = FLOORS.filter((f) => results[f]?.measures.p99 !== undefined)
  if (floors.length > 0) lines.push('', ...floorSection(results, floors))
  const e = results.edge?.measures ?? {}; const a = results.aedes?.measures ?? {}; const q = results.mosquitto?.measures ?? {}
  if (process.env.BENCH_CELLS === undefined && results.edge?.error === undefined && e.q1ack !== undefined) {
    lines.push('', 'Targets (issue 2):',
      `- durable QoS 1 throughput >= stock aedes QoS 1: ${fmtInt(median(e.q1ack))} vs ${fmtInt(median(a.q1ack ?? [0]))} -> ${median(e.q1ack) >= median(a.q1ack ?? [0]) ? 'met' : 'NOT met'}`,
      `- p99 at 5,000/s <= mosquitto's: ${fmtMs(median(e.p99))} vs ${fmtMs(median(q.p99 ?? [0]))} ms -> ${median(e.p99) <= median(q.p99 ?? [Infinity]) ? 'met' : 'NOT met'}${floors.length === 0 ? '' : ` (floors: ${floors.map((f) => `${f} ${fmtMs(median(results[f]?.measures.p99 ?? [0]))}`).join(', ')} ms)`}`,
      `- <= 12 KiB per idle connection: ${fmtKiB(median(e.idleKiB))} KiB -> ${median(e.idleKiB) <= 12 ? 'met' : 'NOT met'}`)
  }
  if (CELLS.has('generator') || process.env.BENCH_CELLS === undefined) lines.push('', ...(await generatorSection(log)))
  else if (e.idleKiB !== undefined) lines.push('', `edge idle KiB per connection, first ramp: ${e.idleKiB.map(fmtKiB).join(' / ')} (median ${fmtKiB(median(e.idleKiB))})`)
  return lines.join('\n')
}

// The latency cell again with the floors (node-floor.ts) beside the edge and mosquitto, and how
// often each one's p99 was at or below mosquitto's in the same round of the interleaved runs.
function floorSection (results: Partial<Record<BrokerName, BrokerResult>>, floors: FloorName[]): string[] {
  const names: BrokerName[] = ['edge', 'mosquitto', ...floors]
  const p99Of = (b: BrokerName): number[] | undefined => results[b]?.error === undefined ? results[b]?.measures.p99 : undefined
  const cellOf = (b: BrokerName, k: string): string => {
    const xs = results[b]?.error === undefined ? results[b]?.measures[k] : undefined
    return xs === undefined ? 'n/a' : `${fmtMs(median(xs))} <sub>(${xs.map(fmtMs).join(' / ')})</sub>`
  }
  const mosquitto = p99Of('mosquitto')
  const rounds = (b: BrokerName): string => {
    const xs = p99Of(b)
    if (xs === undefined || mosquitto === undefined || b === 'mosquitto') return ''
    const n = Math.min(xs.length, mosquitto.length)
    let atOrBelow = 0
    for (let i = 0; i < n; i++) if (xs[i] <= mosquitto[i]) atOrBelow++
    return `${atOrBelow} of ${n}`
  }
  return [
    '### Latency floor of a Node process',
    '',
    'The latency cell (QoS 1, 5,000 msgs/s) with two floors beside the edge and mosquitto, in the same interleaved rounds: `test/bench/node-floor.ts` forwards every PUBLISH to every subscriber and acks it at once, with no persistence, matching, sessions or limits. `node-raw` frames packets by hand; `node-mqtt-packet` parses with mqtt-packet, the parser aedes uses, as patched by the edge (src/mqtt/limits.ts).',
    '',
    `| measure | ${names.join(' | ')} |`,
    `| --- |${names.map(() => ' --- |').join('')}`,
    ...[['p50 ms', 'p50'], ['p99 ms', 'p99'], ['p99.9 ms', 'p999']].map(([label, k]) => `| ${label} | ${names.map((b) => cellOf(b, k)).join(' | ')} |`),
    `| rounds with p99 <= mosquitto's | ${names.map(rounds).join(' | ')} |`
  ]
}

// The load generator's own limits: QoS 0 publish rate with no subscriber (mosquitto only
// parses and drops), and 10,000 devices in device mode (RSS, ramp).
async function generatorSection (log: (s: string) => void): Promise<string[]> {
  // Unlimited queues (MOSQUITTO_TUNING) so that mosquitto does not drop the checker's messages during the ramp:
  // this section measures the simulator, not the broker.
  const broker = await startBroker('mosquitto')
  try {
    const rates: number[] = []; const cpus: number[] = []
    for (let i = 0; i < RUNS; i++) {
      log(`generator ceiling run ${i + 1}/${RUNS}`)
      const r = await simReport<LoadReport>(['--broker', broker.url, '--max-rate', '--qos', '0', '--connections', '4', '--subscribers', '0', '--duration', '3s', ...LOAD])
      rates.push(r.publishedPerSec); cpus.push(r.generatorCpuCores)
    }
    log('10,000 devices in device mode')
    const dev = await simReport<SimReport>(['--broker', broker.url, '--devices', '10000', '--rate', '0.2', '--qos', '1', '--duration', '8s', '--ramp', '5000'])
    return [
      '### Load generator',
      '',
      '| measure | value |',
      '| --- | --- |',
      `| QoS 0 publish rate, 4 connections, no subscriber, vs mosquitto (one core) | ${fmtInt(median(rates))} msgs/s <sub>(${rates.map(fmtInt).join(' / ')})</sub> |`,
      `| generator CPU meanwhile (cores) | ${median(cpus).toFixed(2)} <sub>(${cpus.map((c) => c.toFixed(2)).join(' / ')})</sub> |`,
      `| device mode, 10,000 devices (QoS 1, 0.2 msg/s each, 8 s): simulator max RSS | ${(dev.process.maxRssBytes / 1048576).toFixed(0)} MiB |`,
      `| device mode, 10,000 devices: all connected after (ramp 5,000/s asked) | ${dev.rampMs === null ? 'not all connected' : `${(dev.rampMs / 1000).toFixed(1)} s (${fmtInt(10_000 / (dev.rampMs / 1000))}/s)`} |`,
      `| device mode, 10,000 devices: sent / received / lost | ${fmtInt(dev.sent)} / ${fmtInt(dev.received)} / ${fmtInt(dev.lost)} |`
    ]
  } finally { await broker.stop() }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(await run())
}
