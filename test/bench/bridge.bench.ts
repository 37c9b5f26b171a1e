// Bridge benchmarks (issue 4), every figure measured side by side in one run:
// 1. Backlog drain: N messages (100 B payload) stored at the edge during an outage, time until
//    the cloud holds all of them once the link returns.
//    - Tributary: the edge commitlog is filled directly (as the broker would, N appends), the
//      bridge is started against a `tributary cloud` process; timed until the cloud acks the end.
//    - Mosquitto: two Debian mosquitto instances, bridge QoS 1, persistence on, unlimited queue,
//      `start_type lazy` with `threshold N`: the bridge connects when N messages are queued; timed
//      from the last publish until a subscriber at the cloud has received N.
// 2. Latency device -> cloud subscriber at a fixed rate (default 5,000 msgs/s), QoS 1:
//    - Tributary: `tributary edge` (durable acks: PUBACK after fsync) -> bridge -> `tributary
//      cloud` (ack after the store's fsync) -> cloud MQTT subscriber;
//    - Mosquitto: edge mosquitto -> bridge -> cloud mosquitto (nothing durable).
// 3. Live at the edge's maximum durable ingest; the NATS leaf-node drain (bridge-nats-peer.ts).
// Pinning: bridge-pin.ts (edge side core 0, cloud side core 1; BENCH_BRIDGE_PIN=0 to turn off).
// Sizes: BENCH_BRIDGE_N (default 1,000,000), BENCH_BRIDGE_RATE (5000), BENCH_BRIDGE_SECONDS (10).
import { join } from 'node:path'
import { connectAsync, type MqttClient } from 'mqtt'
import * as hdr from 'hdr-histogram-js'
import { CommitLog } from '../../src/commitlog/index.js'
import { silentLogger } from '../../src/log/index.js'
import { MemoryMetaStore } from '../../src/meta/memory.js'
import { BridgeClient } from '../../edge/bridge/client.js'
import { startCloudProcess } from '../helpers/cloud-process.js'
import { startEdge } from '../helpers/edge-process.js'
import { mosquittoPath, startMosquitto, type Mosquitto } from '../helpers/mosquitto.js'
import { tempDir, waitFor } from '../helpers/net.js'
import { cpuSeconds, simReport } from './broker-procs.js'
import { natsLeafDrain, natsServerPath } from './bridge-nats-peer.js'
import { CLOUD_CORE, EDGE_CORE, pin, unpinSelf } from './bridge-pin.js'

const N = Number(process.env.BENCH_BRIDGE_N ?? 1_000_000)
const RATE = Number(process.env.BENCH_BRIDGE_RATE ?? 5000)
const SECONDS = Number(process.env.BENCH_BRIDGE_SECONDS ?? 10)
const LIVE_SECONDS = Number(process.env.BENCH_BRIDGE_LIVE_SECONDS ?? 10)
// Latency runs first publish this long at the same rate unmeasured (payload byte 8 = 1): the
// first ~0.5 s of traffic through fresh Node processes (JIT, first allocations) runs at 5 to
// 30 ms, i.e. 2,500 of a 10 s run's 50,000 messages, five times its p99 (as in broker.bench.ts).
const WARMUP_SECONDS = Number(process.env.BENCH_BRIDGE_WARMUP_SECONDS ?? 1)
const RUNS = Number(process.env.BENCH_BRIDGE_RUNS ?? 3)
const PAYLOAD = 100

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

// Pinning (bridge-pin.ts; BENCH_BRIDGE_PIN=0 turns it off): the edge side on core 0, the cloud
// side on core 1. In the drain the edge side is this process (it holds the edge's log and runs
// the bridge); NATS: leaf on core 0, hub on core 1. In the latency and live runs the load
// generator and subscribers (this process, or the simulator) float: they are light at 5,000
// msgs/s, and pinning them beside either side would make that side wait for them.

export async function tributaryDrain (): Promise<{ seconds: number, appendSeconds: number, edgeCpu: number, cloudCpu: number }> {
  const edir = await tempDir('bench-drain-edge')
  const cdir = await tempDir('bench-drain-cloud')
  const external = process.env.BENCH_BRIDGE_CLOUD_URL // a cloud started by hand (profiling)
  const cloud = external !== undefined
    ? { bridgeUrl: external, kill: async () => {}, child: { pid: undefined } }
    : await startCloudProcess(['--data-dir', cdir.path, '--mqtt-port', '0', '--bridge-port', '0', '--http-port', '0', '--edge-token', 'e=t', '--log-level', 'warn'])
  const log = await CommitLog.open({ dir: join(edir.path, 'log'), segmentBytes: 64 * 1024 * 1024, flushPolicy: 'interval', flushIntervalMs: 5, maxRecordBytes: 1024 * 1024 + 65536, retentionBytes: 0, retentionMs: 0, log: silentLogger() })
  pin(cloud.child.pid, CLOUD_CORE)
  pin(process.pid, EDGE_CORE)
  try {
    const payload = Buffer.alloc(PAYLOAD, 7)
    const t0 = performance.now()
    const noop = (): void => {}
    for (let i = 0; i < N; i++) {
      log.append({ topic: `devices/${i % 100}/telemetry`, payload, qos: 1, retain: false, clientId: `dev-${i % 100}` }, noop)
      if ((i & 0xffff) === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    await log.flush()
    const appendSeconds = (performance.now() - t0) / 1000
    const end = log.durableOffset
    const bridge = new BridgeClient({
      log,
      meta: new MemoryMetaStore(),
      logger: silentLogger(),
      publishLocal: (_m, _a, done) => { done() },
      settings: { cloudUrls: [cloud.bridgeUrl], edgeId: 'e', cloudToken: 't', forward: ['#'], batchMaxBytes: Number(process.env.BENCH_BRIDGE_BATCH_BYTES ?? 1024 * 1024), batchMaxRecords: Number(process.env.BENCH_BRIDGE_BATCH_RECORDS ?? 16_384), windowBatches: Number(process.env.BENCH_BRIDGE_WINDOW ?? 32), rateMsgsPerSec: 0, rateBytesPerSec: 0, heartbeatMs: 5000, heartbeatTimeoutMs: 15_000, backoffMinMs: 100, backoffMaxMs: 1000, connectTimeoutMs: 10_000, checkpointIntervalMs: 1000 }
    })
    // CPU seconds of each side during the drain: which one bounds it.
    const cloudPid = cloud.child.pid
    const cloudCpu0 = cloudPid === undefined ? NaN : cpuSeconds(cloudPid)
    const edgeCpu0 = process.cpuUsage()
    const t1 = performance.now()
    await bridge.start()
    await waitFor('drain', () => bridge.ackedOffset >= end, 600_000, 5)
    const seconds = (performance.now() - t1) / 1000
    const e = process.cpuUsage(edgeCpu0)
    const cloudCpu = cloudPid === undefined ? NaN : cpuSeconds(cloudPid) - cloudCpu0
    await bridge.close()
    return { seconds, appendSeconds, edgeCpu: (e.user + e.system) / 1e6, cloudCpu }
  } finally {
    unpinSelf()
    await log.close()
    await cloud.kill()
    await edir.remove(); await cdir.remove()
  }
}

// Counts messages at a subscriber; resolves when `n` arrived.
function counter (client: MqttClient, n: number): { count: () => number, done: Promise<number> } {
  let count = 0
  let resolveDone: (t: number) => void = () => {}
  const done = new Promise<number>((resolve) => { resolveDone = resolve })
  client.on('message', () => { if (++count === n) resolveDone(performance.now()) })
  return { count: () => count, done }
}

async function publishFast (url: string, n: number, qos: 0 | 1): Promise<void> {
  const pub = await connectAsync(url, { clientId: `bench-pub-${process.pid}`, protocolVersion: 4 })
  const payload = Buffer.alloc(PAYLOAD, 7)
  for (let i = 0; i < n; i++) {
    // Respect the socket's backpressure: wait for the callback every 1000 messages.
    if (i % 1000 === 999) await new Promise<void>((resolve) => { pub.publish(`devices/${i % 100}/telemetry`, payload, { qos }, () => { resolve() }) })
    else pub.publish(`devices/${i % 100}/telemetry`, payload, { qos })
  }
  await new Promise<void>((resolve) => { pub.publish('devices/last', payload, { qos: 1 }, () => { resolve() }) })
  await pub.endAsync()
}

async function mosquittoBridgePair (bin: string, lazyThreshold: number, topicPattern = 'devices/#'): Promise<{ edge: Mosquitto, cloud: Mosquitto, cleanup: () => Promise<void> }> {
  const pdir = await tempDir('bench-mosq-persist')
  const cloud = await startMosquitto(bin, { extraConfig: ['set_tcp_nodelay true', 'max_queued_messages 0', 'max_inflight_messages 0'] })
  const edge = await startMosquitto(bin, {
    extraConfig: [
      'set_tcp_nodelay true', 'max_queued_messages 0', 'max_inflight_messages 0',
      'persistence true', `persistence_location ${pdir.path}/`, 'autosave_interval 1800',
      'connection cloud', `address 127.0.0.1:${cloud.port}`, `topic ${topicPattern} out 1 "" up/e/`, 'cleansession false',
      'bridge_protocol_version mqttv311', 'try_private false', 'restart_timeout 1', 'bridge_max_packet_size 0',
      ...(lazyThreshold > 0 ? ['start_type lazy', `threshold ${lazyThreshold}`] : [])
    ]
  })
  pin(edge.pid, EDGE_CORE)
  pin(cloud.pid, CLOUD_CORE)
  return { edge, cloud, cleanup: async () => { await edge.stop(); await cloud.stop(); await pdir.remove() } }
}

async function mosquittoDrain (bin: string): Promise<{ seconds: number, received: number }> {
  const { edge, cloud, cleanup } = await mosquittoBridgePair(bin, N)
  try {
    const sub = await connectAsync(cloud.url, { clientId: 'bench-sub', protocolVersion: 4 })
    await sub.subscribeAsync('up/e/#', { qos: 1 })
    const c = counter(sub, N)
    await publishFast(edge.url, N - 1, 0) // + 'devices/last' = N
    const t0 = performance.now()
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<number>((resolve) => { timer = setTimeout(() => { resolve(NaN) }, 300_000) })
    const t1 = await Promise.race([c.done, timeout])
    clearTimeout(timer) // a pending 5-minute timer would keep the benchmark process alive
    await sub.endAsync()
    return { seconds: (t1 - t0) / 1000, received: c.count() }
  } finally {
    await cleanup()
  }
}

// Publishes at RATE msgs/s for SECONDS with the send time in the payload; the subscriber
// records (receive - send). Payload: 8-byte float timestamp + padding to 100 B.
export interface LatencyResult { p50: number, p99: number, max: number, received: number, sent: number, edge?: { p50: number, p99: number, max: number } }

// mqtt.js leaves Nagle on (no setNoDelay): a small PUBLISH or PUBACK then waits for the peer's
// delayed ACK (40 ms on Linux) whenever the previous segment is unacknowledged, e.g. while the
// edge holds a PUBACK for its fsync. That is the kernel's latency, not the brokers': off, as the
// simulator and the brokers do (edge, cloud and the tuned mosquitto set TCP_NODELAY).
function noDelay (client: MqttClient): MqttClient {
  const s = client.stream as { setNoDelay?: (on: boolean) => unknown }
  s.setNoDelay?.(true)
  return client
}

async function histogramSubscriber (url: string, topic: string, clientId: string): Promise<{ h: hdr.Histogram, count: () => number, end: () => Promise<void> }> {
  const sub = noDelay(await connectAsync(url, { clientId, protocolVersion: 4 }))
  const h = hdr.build({ numberOfSignificantValueDigits: 3 })
  let received = 0
  sub.on('message', (_t, payload) => {
    const sentAt = payload.readDoubleBE(0)
    if (payload[8] === 1) { received++; return } // warm-up
    h.recordValue(Math.max(0, Math.round((performance.timeOrigin + performance.now() - sentAt) * 1000)))
    received++
  })
  await sub.subscribeAsync(topic, { qos: 1 })
  return { h, count: () => received, end: async () => { await sub.endAsync() } }
}

// Publishes at RATE msgs/s for SECONDS with the send time in the payload; the subscriber
// records (receive - send). Payload: 8-byte float timestamp + padding to 100 B. With `edgeSub`,
// a second subscriber at the edge measures the same messages there: the difference between the
// two is what the bridge and the cloud add.
export async function latency (pubUrl: string, subUrl: string, subTopic: string, edgeSub?: { url: string, topic: string }): Promise<LatencyResult> {
  const sub = await histogramSubscriber(subUrl, subTopic, `bench-lat-sub-${process.pid}`)
  const esub = edgeSub === undefined ? undefined : await histogramSubscriber(edgeSub.url, edgeSub.topic, `bench-lat-esub-${process.pid}`)
  const pub = noDelay(await connectAsync(pubUrl, { clientId: `bench-lat-pub-${process.pid}`, protocolVersion: 4 }))
  const warmup = Math.round(RATE * WARMUP_SECONDS)
  const total = warmup + RATE * SECONDS
  // Payloads from a preallocated ring (a Node generator's own GC pauses floor the p99 it can
  // see): a buffer is reused after RING messages, seconds after its PUBACK at these rates.
  const RING = 16_384
  const ring = Array.from({ length: RING }, () => Buffer.alloc(PAYLOAD))
  const start = performance.now()
  let sent = 0
  while (sent < total) {
    const due = Math.floor((performance.now() - start) / 1000 * RATE)
    while (sent < due && sent < total) {
      const payload = ring[sent % RING]
      payload.writeDoubleBE(performance.timeOrigin + performance.now(), 0)
      payload[8] = sent < warmup ? 1 : 0
      pub.publish('devices/lat/telemetry', payload, { qos: 1 })
      sent++
    }
    await sleep(1)
  }
  await waitFor('latency messages', () => sub.count() >= total && (esub === undefined || esub.count() >= total), 60_000).catch(() => {})
  await pub.endAsync(); await sub.end(); await esub?.end()
  const h = sub.h
  const edge = esub === undefined ? undefined : { p50: esub.h.getValueAtPercentile(50) / 1000, p99: esub.h.getValueAtPercentile(99) / 1000, max: esub.h.maxValue / 1000 }
  return { p50: h.getValueAtPercentile(50) / 1000, p99: h.getValueAtPercentile(99) / 1000, max: h.maxValue / 1000, received: sub.count() - warmup, sent: sent - warmup, edge }
}

export async function tributaryLatency (flushPolicy = 'interval'): Promise<LatencyResult> {
  const edir = await tempDir('bench-lat-edge')
  const cdir = await tempDir('bench-lat-cloud')
  const cloud = await startCloudProcess(['--data-dir', cdir.path, '--mqtt-port', '0', '--bridge-port', '0', '--http-port', '0', '--edge-token', 'e=t', '--log-level', 'warn', '--flush-policy', flushPolicy])
  const edge = await startEdge({ dataDir: edir.path, args: ['--cloud-url', cloud.bridgeUrl, '--edge-id', 'e', '--cloud-token', 't', '--log-level', 'warn', '--flush-policy', flushPolicy, ...(process.env.BENCH_BRIDGE_EDGE_ARGS ?? '').split(' ').filter((a) => a !== '')] })
  pin(edge.pid, EDGE_CORE)
  pin(cloud.child.pid, CLOUD_CORE)
  try {
    await sleep(500)
    return await latency(edge.url, `mqtt://127.0.0.1:${cloud.mqttPort}`, 'up/e/devices/lat/telemetry', { url: edge.url, topic: 'devices/lat/telemetry' })
  } finally {
    await edge.kill(); await cloud.kill()
    await edir.remove(); await cdir.remove()
  }
}

async function mosquittoLatency (bin: string): Promise<LatencyResult> {
  const { edge, cloud, cleanup } = await mosquittoBridgePair(bin, 0)
  try {
    await sleep(1500) // the bridge connects
    return await latency(edge.url, cloud.url, 'up/e/devices/lat/telemetry')
  } finally {
    await cleanup()
  }
}

interface LiveResult { ingestPerSec: number, deliveredPerSec: number, acked: number, received: number, maxLagMs: number, maxLagMessages: number, tailSeconds: number }

// Live replication at the edge's maximum durable ingest rate: the simulator's load mode (4 QoS 1
// connections, window 64, 100 B, pinned to core 1) publishes as fast as the edge acks for
// LIVE_SECONDS; a cloud subscriber (QoS 0: its own cost stays low, the same for both systems)
// counts arrivals. Reported: the ingest rate (acked at the edge), the delivered rate at the
// cloud subscriber (all messages / first to last arrival, so a backlog after the load counts), the largest replication lag seen (Tributary: the edge's
// oldest-unacked age and lag in messages from /metrics, sampled every 100 ms) and how long
// after the load stopped the cloud subscriber had everything.
async function live (edgeUrl: string, cloudUrl: string, subTopic: string, lagProbe?: () => Promise<[number, number]>, diagnose?: () => Promise<string>): Promise<LiveResult> {
  const sub = await connectAsync(cloudUrl, { clientId: `bench-live-sub-${process.pid}`, protocolVersion: 4 })
  let received = 0
  let firstAt = 0
  let lastAt = 0
  sub.on('message', () => { if (received++ === 0) firstAt = performance.now(); lastAt = performance.now() })
  await sub.subscribeAsync(subTopic, { qos: 0 })
  let maxLagMs = 0
  let maxLagMessages = 0
  let sampling = true
  const sampler = (async () => {
    while (sampling && lagProbe !== undefined) {
      const [ageMs, msgs] = await lagProbe().catch(() => [0, 0])
      if (ageMs > maxLagMs) maxLagMs = ageMs
      if (msgs > maxLagMessages) maxLagMessages = msgs
      await sleep(100)
    }
  })()
  const r = await simReport<{ acked: number, ackedPerSec: number }>(['--broker', edgeUrl, '--max-rate', '--qos', '1', '--window', '64', '--connections', '4', '--subscribers', '0', '--payload-bytes', String(PAYLOAD), '--duration', `${LIVE_SECONDS}s`, '--drain-timeout', '5s'])
  const tEnd = performance.now()
  const complete = await waitFor('live messages at the cloud', () => received >= r.acked, 30_000, 10).then(() => true, () => false)
  const tailSeconds = complete ? (performance.now() - tEnd) / 1000 : NaN
  if (!complete && diagnose !== undefined) console.error(`live: ${r.acked - received} messages missing at the cloud subscriber after 30 s: ${await diagnose().catch((e: Error) => e.message)}`)
  sampling = false
  await sampler
  await sub.endAsync()
  return { ingestPerSec: r.ackedPerSec, deliveredPerSec: Math.round(received / Math.max(0.001, (lastAt - firstAt) / 1000)), acked: r.acked, received, maxLagMs, maxLagMessages, tailSeconds }
}

function metricValue (text: string, name: string): number {
  const m = new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text)
  return m === null ? 0 : Number(m[1])
}

export async function tributaryLive (): Promise<LiveResult> {
  const edir = await tempDir('bench-live-edge')
  const cdir = await tempDir('bench-live-cloud')
  const cloud = await startCloudProcess(['--data-dir', cdir.path, '--mqtt-port', '0', '--bridge-port', '0', '--http-port', '0', '--edge-token', 'e=t', '--log-level', 'warn'])
  const edge = await startEdge({ dataDir: edir.path, args: ['--cloud-url', cloud.bridgeUrl, '--edge-id', 'e', '--cloud-token', 't', '--log-level', 'warn'] })
  pin(edge.pid, EDGE_CORE)
  pin(cloud.child.pid, CLOUD_CORE)
  try {
    await sleep(500)
    const probe = async (): Promise<[number, number]> => {
      const text = await (await fetch(`http://127.0.0.1:${edge.httpPort}/metrics`)).text()
      return [metricValue(text, 'tributary_bridge_oldest_unacked_age_seconds') * 1000, metricValue(text, 'tributary_bridge_lag_messages')]
    }
    const diagnose = async (): Promise<string> => {
      const m = await (await fetch(`http://127.0.0.1:${edge.httpPort}/metrics`)).text()
      const st = await (await fetch(`http://127.0.0.1:${cloud.httpPort}/stats`)).text()
      return `edge lag ${metricValue(m, 'tributary_bridge_lag_messages')} msgs, cloud /stats ${st}`
    }
    return await live(edge.url, `mqtt://127.0.0.1:${cloud.mqttPort}`, 'up/e/#', probe, diagnose)
  } finally {
    await edge.kill(); await cloud.kill()
    await edir.remove(); await cdir.remove()
  }
}

async function mosquittoLive (bin: string): Promise<LiveResult> {
  const { edge, cloud, cleanup } = await mosquittoBridgePair(bin, 0, 'load/#')
  try {
    await sleep(1500) // the bridge connects
    return await live(edge.url, cloud.url, 'up/e/#')
  } finally {
    await cleanup()
  }
}

const median = (xs: number[]): number => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  return v.length % 2 === 1 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2
}
const f = (x: number, d = 2): string => Number.isFinite(x) ? x.toFixed(d) : 'n/a'
const k = (x: number): string => Number.isFinite(x) ? Math.round(x).toLocaleString('en') : 'n/a'

// BENCH_BRIDGE_ONLY=drain,latency,... runs a subset (profiling, quick checks).
const ONLY = (process.env.BENCH_BRIDGE_ONLY ?? '').split(',').filter((s) => s !== '')
const want = (name: string): boolean => ONLY.length === 0 || ONLY.includes(name)

export async function run (): Promise<string> {
  const bin = mosquittoPath()
  const nats = natsServerPath()
  const cols: Record<string, number[]> = {}
  const put = (name: string, v: number): void => { (cols[name] ??= []).push(v) }
  const lines: string[] = []
  for (let run = 1; run <= RUNS; run++) {
    const parts: string[] = []
    if (want('drain')) {
      const td = await tributaryDrain()
      put('drain.trib', td.seconds); parts.push(`tributary drain ${f(td.seconds)} s (CPU edge ${f(td.edgeCpu)} s, cloud ${f(td.cloudCpu)} s)`)
    }
    if (want('mosquitto-drain') && bin !== undefined) {
      const md = await mosquittoDrain(bin)
      put('drain.mosq', md.seconds); parts.push(`mosquitto drain ${f(md.seconds)} s (${k(md.received)} received)`)
    }
    if (want('nats-drain') && nats !== undefined) {
      const nd = await natsLeafDrain(nats, N, PAYLOAD)
      put('drain.nats', nd.seconds); parts.push(`nats drain ${f(nd.seconds)} s (${k(nd.received)} received)`)
    }
    if (want('live')) {
      const tl = await tributaryLive()
      put('live.trib.ingest', tl.ingestPerSec); put('live.trib.delivered', tl.deliveredPerSec); put('live.trib.lagMs', tl.maxLagMs); put('live.trib.lagMsgs', tl.maxLagMessages); put('live.trib.tail', tl.tailSeconds)
      parts.push(`tributary live ingest ${k(tl.ingestPerSec)}/s delivered ${k(tl.deliveredPerSec)}/s max lag ${k(tl.maxLagMs)} ms / ${k(tl.maxLagMessages)} msgs, tail ${f(tl.tailSeconds)} s (${k(tl.received)}/${k(tl.acked)})`)
    }
    if (want('mosquitto-live') && bin !== undefined) {
      const ml = await mosquittoLive(bin)
      put('live.mosq.ingest', ml.ingestPerSec); put('live.mosq.delivered', ml.deliveredPerSec); put('live.mosq.tail', ml.tailSeconds)
      parts.push(`mosquitto live ingest ${k(ml.ingestPerSec)}/s delivered ${k(ml.deliveredPerSec)}/s, tail ${f(ml.tailSeconds)} s (${k(ml.received)}/${k(ml.acked)})`)
    }
    if (want('latency')) {
      const tl = await tributaryLatency()
      put('lat.trib.p50', tl.p50); put('lat.trib.p99', tl.p99)
      if (tl.edge !== undefined) { put('lat.edge.p50', tl.edge.p50); put('lat.edge.p99', tl.edge.p99) }
      parts.push(`tributary latency p50 ${f(tl.p50)} p99 ${f(tl.p99)} max ${f(tl.max, 1)} ms (${tl.received}/${tl.sent})${tl.edge !== undefined ? `, same messages at an edge subscriber p50 ${f(tl.edge.p50)} p99 ${f(tl.edge.p99)} max ${f(tl.edge.max, 1)} ms` : ''}`)
    }
    if (want('mosquitto-latency') && bin !== undefined) {
      const ml = await mosquittoLatency(bin)
      put('lat.mosq.p50', ml.p50); put('lat.mosq.p99', ml.p99)
      parts.push(`mosquitto latency p50 ${f(ml.p50)} p99 ${f(ml.p99)} max ${f(ml.max, 1)} ms (${ml.received}/${ml.sent})`)
    }
    const line = `run ${run}: ${parts.join('; ')}`
    console.error(line)
    lines.push(`- ${line}`)
  }
  const m = (name: string): number => median(cols[name] ?? [])
  const rows: string[] = []
  const ratio = (a: number, b: number): string => Number.isFinite(a) && Number.isFinite(b) && a > 0 ? `${(b / a).toFixed(1)}x` : 'n/a'
  if (cols['drain.trib'] !== undefined) {
    rows.push(`| backlog drain ${k(N)} x ${PAYLOAD} B | Tributary bridge -> embedded cloud store (durable) | **${f(m('drain.trib'))} s** (${k(N / m('drain.trib'))} msgs/s) |`)
    if (cols['drain.mosq'] !== undefined) rows.push(`| | Mosquitto bridge (QoS 1, persistence, unlimited queue) | ${f(m('drain.mosq'))} s (Tributary ${ratio(m('drain.trib'), m('drain.mosq'))} faster) |`)
    if (cols['drain.nats'] !== undefined) rows.push(`| | NATS leaf JetStream stream sourced into a hub stream | ${f(m('drain.nats'))} s (Tributary ${ratio(m('drain.trib'), m('drain.nats'))} faster) |`)
  }
  if (cols['live.trib.ingest'] !== undefined) {
    rows.push(`| live at max durable ingest, ${LIVE_SECONDS} s | Tributary | ingest ${k(m('live.trib.ingest'))}/s, delivered at cloud ${k(m('live.trib.delivered'))}/s, max lag ${k(m('live.trib.lagMs'))} ms (${k(m('live.trib.lagMsgs'))} msgs), all delivered ${f(m('live.trib.tail'))} s after the load stopped |`)
    if (cols['live.mosq.ingest'] !== undefined) rows.push(`| | Mosquitto bridge | ingest ${k(m('live.mosq.ingest'))}/s, delivered at cloud ${k(m('live.mosq.delivered'))}/s, all delivered ${f(m('live.mosq.tail'))} s after the load stopped |`)
  }
  if (cols['lat.trib.p50'] !== undefined) {
    rows.push(`| device -> cloud subscriber at ${k(RATE)} msgs/s, QoS 1 | Tributary (durable acks at edge and cloud) | p50 ${f(m('lat.trib.p50'))} ms, p99 ${f(m('lat.trib.p99'))} ms |`)
    if (cols['lat.edge.p50'] !== undefined) rows.push(`| | (same messages at a subscriber on the edge) | p50 ${f(m('lat.edge.p50'))} ms, p99 ${f(m('lat.edge.p99'))} ms |`)
    if (cols['lat.mosq.p50'] !== undefined) rows.push(`| | Mosquitto bridge (nothing durable) | p50 ${f(m('lat.mosq.p50'))} ms, p99 ${f(m('lat.mosq.p99'))} ms |`)
  }
  return ['## Bridge (measured run)', '', `100 B payloads; ${new Date().toISOString()}; Node ${process.version}; medians of ${RUNS} runs.`, '', '| benchmark | system | median |', '| --- | --- | --- |', ...rows, '', 'Runs:', ...lines].join('\n')
}

// `node --import tsx test/bench/bridge.bench.ts` runs this file alone.
if (process.argv[1] !== undefined && process.argv[1].endsWith('bridge.bench.ts')) {
  run().then((md) => { console.log(md) }, (err) => { console.error(err); process.exitCode = 1 })
}
