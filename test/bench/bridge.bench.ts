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
// Not measured (yet): the NATS leaf node peer and the live lag at the edge's maximum ingest rate.
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

const N = Number(process.env.BENCH_BRIDGE_N ?? 1_000_000)
const RATE = Number(process.env.BENCH_BRIDGE_RATE ?? 5000)
const SECONDS = Number(process.env.BENCH_BRIDGE_SECONDS ?? 10)
const PAYLOAD = 100

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

export async function tributaryDrain (): Promise<{ seconds: number, appendSeconds: number }> {
  const edir = await tempDir('bench-drain-edge')
  const cdir = await tempDir('bench-drain-cloud')
  const external = process.env.BENCH_BRIDGE_CLOUD_URL // a cloud started by hand (profiling)
  const cloud = external !== undefined
    ? { bridgeUrl: external, kill: async () => {} }
    : await startCloudProcess(['--data-dir', cdir.path, '--mqtt-port', '0', '--bridge-port', '0', '--http-port', '0', '--edge-token', 'e=t', '--log-level', 'warn'])
  const log = await CommitLog.open({ dir: join(edir.path, 'log'), segmentBytes: 64 * 1024 * 1024, flushPolicy: 'interval', flushIntervalMs: 5, maxRecordBytes: 1024 * 1024 + 65536, retentionBytes: 0, retentionMs: 0, log: silentLogger() })
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
      settings: { cloudUrls: [cloud.bridgeUrl], edgeId: 'e', cloudToken: 't', forward: ['#'], batchMaxBytes: 1024 * 1024, batchMaxRecords: 16_384, windowBatches: 32, rateMsgsPerSec: 0, rateBytesPerSec: 0, heartbeatMs: 5000, heartbeatTimeoutMs: 15_000, backoffMinMs: 100, backoffMaxMs: 1000, connectTimeoutMs: 10_000, checkpointIntervalMs: 1000 }
    })
    const t1 = performance.now()
    await bridge.start()
    await waitFor('drain', () => bridge.status().ackedOffset >= end, 600_000, 5)
    const seconds = (performance.now() - t1) / 1000
    await bridge.close()
    return { seconds, appendSeconds }
  } finally {
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

async function mosquittoBridgePair (bin: string, lazyThreshold: number): Promise<{ edge: Mosquitto, cloud: Mosquitto, cleanup: () => Promise<void> }> {
  const pdir = await tempDir('bench-mosq-persist')
  const cloud = await startMosquitto(bin, { extraConfig: ['set_tcp_nodelay true', 'max_queued_messages 0', 'max_inflight_messages 0'] })
  const edge = await startMosquitto(bin, {
    extraConfig: [
      'set_tcp_nodelay true', 'max_queued_messages 0', 'max_inflight_messages 0',
      'persistence true', `persistence_location ${pdir.path}/`, 'autosave_interval 1800',
      'connection cloud', `address 127.0.0.1:${cloud.port}`, 'topic devices/# out 1 "" up/e/', 'cleansession false',
      'bridge_protocol_version mqttv311', 'try_private false', 'restart_timeout 1', 'bridge_max_packet_size 0',
      ...(lazyThreshold > 0 ? ['start_type lazy', `threshold ${lazyThreshold}`] : [])
    ]
  })
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
    const timeout = sleep(300_000).then(() => NaN)
    const t1 = await Promise.race([c.done, timeout])
    await sub.endAsync()
    return { seconds: (t1 - t0) / 1000, received: c.count() }
  } finally {
    await cleanup()
  }
}

// Publishes at RATE msgs/s for SECONDS with the send time in the payload; the subscriber
// records (receive - send). Payload: 8-byte float timestamp + padding to 100 B.
export async function latency (pubUrl: string, subUrl: string, subTopic: string): Promise<{ p50: number, p99: number, max: number, received: number, sent: number }> {
  const sub = await connectAsync(subUrl, { clientId: `bench-lat-sub-${process.pid}`, protocolVersion: 4 })
  const h = hdr.build({ numberOfSignificantValueDigits: 3 })
  let received = 0
  sub.on('message', (_t, payload) => {
    const sentAt = payload.readDoubleBE(0)
    h.recordValue(Math.max(0, Math.round((performance.timeOrigin + performance.now() - sentAt) * 1000)))
    received++
  })
  await sub.subscribeAsync(subTopic, { qos: 1 })
  const pub = await connectAsync(pubUrl, { clientId: `bench-lat-pub-${process.pid}`, protocolVersion: 4 })
  const total = RATE * SECONDS
  const start = performance.now()
  let sent = 0
  while (sent < total) {
    const due = Math.floor((performance.now() - start) / 1000 * RATE)
    while (sent < due && sent < total) {
      const payload = Buffer.alloc(PAYLOAD)
      payload.writeDoubleBE(performance.timeOrigin + performance.now(), 0)
      pub.publish('devices/lat/telemetry', payload, { qos: 1 })
      sent++
    }
    await sleep(1)
  }
  await waitFor('latency messages', () => received >= total, 60_000).catch(() => {})
  await pub.endAsync(); await sub.endAsync()
  return { p50: h.getValueAtPercentile(50) / 1000, p99: h.getValueAtPercentile(99) / 1000, max: h.maxValue / 1000, received, sent }
}

export async function tributaryLatency (flushPolicy = 'interval'): Promise<Awaited<ReturnType<typeof latency>>> {
  const edir = await tempDir('bench-lat-edge')
  const cdir = await tempDir('bench-lat-cloud')
  const cloud = await startCloudProcess(['--data-dir', cdir.path, '--mqtt-port', '0', '--bridge-port', '0', '--http-port', '0', '--edge-token', 'e=t', '--log-level', 'warn', '--flush-policy', flushPolicy])
  const edge = await startEdge({ dataDir: edir.path, args: ['--cloud-url', cloud.bridgeUrl, '--edge-id', 'e', '--cloud-token', 't', '--log-level', 'warn', '--flush-policy', flushPolicy, ...(process.env.BENCH_BRIDGE_EDGE_ARGS ?? '').split(' ').filter((a) => a !== '')] })
  try {
    await sleep(500)
    if (process.env.BENCH_BRIDGE_EDGE_ONLY === '1') return await latency(edge.url, edge.url, 'devices/lat/telemetry')
    return await latency(edge.url, `mqtt://127.0.0.1:${cloud.mqttPort}`, 'up/e/devices/lat/telemetry')
  } finally {
    await edge.kill(); await cloud.kill()
    await edir.remove(); await cdir.remove()
  }
}

async function mosquittoLatency (bin: string): Promise<Awaited<ReturnType<typeof latency>>> {
  const { edge, cloud, cleanup } = await mosquittoBridgePair(bin, 0)
  try {
    await sleep(1500) // the bridge connects
    return await latency(edge.url, cloud.url, 'up/e/devices/lat/telemetry')
  } finally {
    await cleanup()
  }
}

export async function run (): Promise<string> {
  const bin = mosquittoPath()
  const rows: string[] = []
  const td = await tributaryDrain()
  rows.push(`| backlog drain, ${N.toLocaleString('en')} msgs | Tributary bridge -> embedded cloud store (durable) | **${td.seconds.toFixed(2)} s** (${Math.round(N / td.seconds).toLocaleString('en')} msgs/s); filling the edge log took ${td.appendSeconds.toFixed(1)} s |`)
  if (bin !== undefined) {
    const md = await mosquittoDrain(bin)
    rows.push(`| backlog drain, ${N.toLocaleString('en')} msgs | Mosquitto bridge (QoS 1, persistence, unlimited queue) | ${Number.isFinite(md.seconds) ? `${md.seconds.toFixed(2)} s (${Math.round(N / md.seconds).toLocaleString('en')} msgs/s)` : `did not finish in 300 s (${md.received.toLocaleString('en')} received)`} |`)
  } else {
    rows.push('| backlog drain | Mosquitto bridge | not measured: mosquitto not installed |')
  }
  const tl = await tributaryLatency()
  rows.push(`| device -> cloud subscriber at ${RATE.toLocaleString('en')} msgs/s, QoS 1 | Tributary (durable acks at edge and cloud) | p50 ${tl.p50.toFixed(2)} ms, p99 ${tl.p99.toFixed(2)} ms, max ${tl.max.toFixed(1)} ms (${tl.received}/${tl.sent} received) |`)
  if (bin !== undefined) {
    const ml = await mosquittoLatency(bin)
    rows.push(`| device -> cloud subscriber at ${RATE.toLocaleString('en')} msgs/s, QoS 1 | Mosquitto bridge (nothing durable) | p50 ${ml.p50.toFixed(2)} ms, p99 ${ml.p99.toFixed(2)} ms, max ${ml.max.toFixed(1)} ms (${ml.received}/${ml.sent} received) |`)
  }
  return ['## Bridge (measured run)', '', `100 B payloads; ${new Date().toISOString()}; Node ${process.version}.`, '', '| benchmark | system | result |', '| --- | --- | --- |', ...rows].join('\n')
}

// `node --import tsx test/bench/bridge.bench.ts` runs this file alone.
if (process.argv[1] !== undefined && process.argv[1].endsWith('bridge.bench.ts')) {
  run().then((md) => { console.log(md) }, (err) => { console.error(err); process.exitCode = 1 })
}
