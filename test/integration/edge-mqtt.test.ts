// The edge broker as a real process (node dist/cli.js edge) with real clients: the `mqtt` npm
// client over TCP and WebSocket, and Debian's mosquitto_pub/mosquitto_sub. QoS 0/1/2, retained
// messages and persistent sessions across a restart, wills, HTTP health and metrics, bad config.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import mqtt, { type MqttClient, type IClientOptions } from 'mqtt'
import { startEdge, runEdgeCli, type EdgeProcess } from '../helpers/edge-process.js'
import { tempDir, waitFor } from '../helpers/net.js'

let dir: { path: string, remove: () => Promise<void> }
let edge: EdgeProcess
const clients: MqttClient[] = []

before(async () => {
  dir = await tempDir('edge-mqtt')
  edge = await startEdge({ dataDir: dir.path })
})

after(async () => {
  for (const c of clients) c.end(true)
  await edge?.stop()
  await dir?.remove()
})

async function connect (opts: IClientOptions = {}, url = edge.url): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts })
  clients.push(c)
  return c
}

function collect (c: MqttClient, topic: string): Array<{ payload: string, qos: number, retain: boolean }> {
  const got: Array<{ payload: string, qos: number, retain: boolean }> = []
  c.on('message', (t, payload, packet) => { if (t === topic) got.push({ payload: payload.toString(), qos: packet.qos, retain: packet.retain }) })
  return got
}

for (const qos of [0, 1, 2] as const) {
  test(`QoS ${qos} publish reaches a QoS ${qos} subscriber, in order`, async () => {
    const sub = await connect()
    const got = collect(sub, `qos/${qos}`)
    await sub.subscribeAsync(`qos/${qos}`, { qos })
    const pub = await connect()
    for (let i = 0; i < 20; i++) await pub.publishAsync(`qos/${qos}`, `m${i}`, { qos })
    await waitFor('20 messages', () => got.length === 20)
    assert.deepEqual(got.map((m) => m.payload), Array.from({ length: 20 }, (_, i) => `m${i}`))
    assert.ok(got.every((m) => m.qos === qos))
  })
}

test('a will is published when a client disconnects abruptly, not after DISCONNECT', async () => {
  const watcher = await connect()
  const wills: string[] = []
  watcher.on('message', (t, p) => { if (t.startsWith('wills/')) wills.push(`${t}=${p.toString()}`) })
  await watcher.subscribeAsync('wills/+', { qos: 1 })
  const polite = await connect({ will: { topic: 'wills/polite', payload: Buffer.from('gone'), qos: 1, retain: false } })
  await polite.endAsync()
  const rude = await connect({ will: { topic: 'wills/rude', payload: Buffer.from('gone'), qos: 1, retain: false } })
  rude.stream.destroy() // no DISCONNECT packet: [MQTT-3.1.2-8] the will must be published
  await waitFor('the will', () => wills.length >= 1)
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.deepEqual(wills, ['wills/rude=gone'])
})

test('MQTT over WebSocket', async () => {
  const sub = await connect({}, edge.wsUrl)
  const got = collect(sub, 'ws/t')
  await sub.subscribeAsync('ws/t', { qos: 1 })
  const pub = await connect() // TCP publisher, WebSocket subscriber: one broker
  await pub.publishAsync('ws/t', 'over-ws', { qos: 1 })
  const wsPub = await connect({}, edge.wsUrl)
  await wsPub.publishAsync('ws/t', 'from-ws', { qos: 1 })
  await waitFor('2 messages', () => got.length === 2)
  assert.deepEqual(got.map((m) => m.payload), ['over-ws', 'from-ws'])
})

function needMosquittoClients (t: { skip: (msg: string) => void }): boolean {
  if (existsSync('/usr/bin/mosquitto_pub') && existsSync('/usr/bin/mosquitto_sub')) return true
  if (process.env.CI === 'true') assert.fail('mosquitto-clients is not installed (apt-get install mosquitto-clients)')
  t.skip('mosquitto-clients not installed')
  return false
}

test('mosquitto_pub and mosquitto_sub (Debian) at QoS 0, 1 and 2', async (t) => {
  if (!needMosquittoClients(t)) return
  // aedes announces each subscription on $SYS/<broker id>/new/subscribes: wait for that instead
  // of guessing when mosquitto_sub is ready.
  const watcher = await connect()
  const subscribed = new Set<string>()
  watcher.on('message', (t, p) => { if (t.endsWith('/new/subscribes')) subscribed.add((JSON.parse(p.toString()) as { clientId: string }).clientId) })
  await watcher.subscribeAsync('$SYS/+/new/subscribes')
  for (const qos of [0, 1, 2]) {
    const topic = `mosq/${qos}`
    const sub = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(edge.mqttPort), '-t', topic, '-q', String(qos), '-C', '3', '-W', '20', '-i', `msub-${qos}`], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    sub.stdout.setEncoding('utf8').on('data', (c: string) => { out += c })
    const exited = new Promise<number | null>((resolve) => sub.once('exit', resolve))
    try {
      await waitFor(`mosquitto_sub at QoS ${qos} to subscribe`, () => subscribed.has(`msub-${qos}`))
      for (let i = 0; i < 3; i++) {
        const p = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(edge.mqttPort), '-t', topic, '-q', String(qos), '-m', `mosq-${i}`])
        assert.equal(await new Promise((resolve) => p.once('exit', resolve)), 0, 'mosquitto_pub exit code')
      }
      assert.equal(await exited, 0, `mosquitto_sub exit code; output: ${out}`)
      assert.deepEqual(out.trim().split('\n'), ['mosq-0', 'mosq-1', 'mosq-2'])
    } finally {
      sub.kill()
    }
  }
})

test('GET /healthz and /metrics', async () => {
  const health = await fetch(`http://127.0.0.1:${edge.httpPort}/healthz`)
  assert.equal(health.status, 200)
  const metrics = await (await fetch(`http://127.0.0.1:${edge.httpPort}/metrics`)).text()
  const appended = /^tributary_edge_appended_total (\d+)$/m.exec(metrics)
  assert.ok(appended !== null && Number(appended[1]) > 0, metrics)
  assert.match(metrics, /^tributary_edge_connections \d+$/m)
  assert.match(metrics, /^tributary_edge_ack_latency_seconds_count \d+$/m)
})

test('retained messages and a persistent session survive a broker restart', async () => {
  const setter = await connect()
  await setter.publishAsync('ret/keep', 'kept', { qos: 1, retain: true })
  await setter.publishAsync('ret/gone', 'x', { qos: 1, retain: true })
  await setter.publishAsync('ret/gone', '', { qos: 1, retain: true }) // [MQTT-3.3.1-10] clears it

  const session = await connect({ clientId: 'persistent-1', clean: false })
  await session.subscribeAsync('sess/#', { qos: 1 })
  await session.endAsync()

  const pub = await connect()
  for (let i = 0; i < 10; i++) await pub.publishAsync('sess/x', `offline-${i}`, { qos: 1 })
  for (const c of clients.splice(0)) c.end(true)

  assert.equal(await edge.stop(), 0, 'graceful shutdown exits 0')
  assert.match(edge.output(), /"phase":"shutting down"/)
  edge = await startEdge({ dataDir: dir.path })

  const back = mqtt.connect(edge.url, { clientId: 'persistent-1', clean: false, reconnectPeriod: 0 })
  clients.push(back)
  const got = collect(back, 'sess/x')
  const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
    back.once('connect', resolve)
    back.once('error', reject)
  })
  assert.equal(connack.sessionPresent, true)
  await waitFor('10 queued messages', () => got.length === 10)
  assert.deepEqual(got.map((m) => m.payload), Array.from({ length: 10 }, (_, i) => `offline-${i}`))

  const reader = await connect()
  const retained: string[] = []
  reader.on('message', (t, p, packet) => { if (packet.retain) retained.push(`${t}=${p.toString()}`) })
  await reader.subscribeAsync('ret/#', { qos: 1 })
  await waitFor('the retained message', () => retained.length >= 1)
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.deepEqual(retained, ['ret/keep=kept'])
})

test('MQTT over TLS when a certificate and key are configured', async () => {
  const tlsDir = await tempDir('edge-tls')
  let tlsEdge: EdgeProcess | undefined
  try {
    const cert = join(tlsDir.path, 'cert.pem')
    const key = join(tlsDir.path, 'key.pem')
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' })
    tlsEdge = await startEdge({ dataDir: join(tlsDir.path, 'data'), args: ['--tls-port', '0', '--tls-cert', cert, '--tls-key', key] })
    assert.ok(tlsEdge.tlsPort > 0)
    const c = await connect({ rejectUnauthorized: false }, `mqtts://127.0.0.1:${tlsEdge.tlsPort}`)
    const got = collect(c, 'tls/t')
    await c.subscribeAsync('tls/t', { qos: 1 })
    await c.publishAsync('tls/t', 'secret', { qos: 1 })
    await waitFor('the message over TLS', () => got.length === 1)
    assert.equal(got[0].payload, 'secret')
    c.end(true)
  } finally {
    await tlsEdge?.stop()
    await tlsDir.remove()
  }
})

test('a second edge on the same data directory is refused (exit 1, TRIB_ERR_LOG_LOCKED); the first keeps serving', async () => {
  const r = await runEdgeCli(['--data-dir', dir.path, '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--ws-port', '-1', '--http-port', '-1'])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /TRIB_ERR_LOG_LOCKED/)
  const c = await connect()
  await c.publishAsync('still/alive', 'yes', { qos: 1 })
})

test('--help lists the flags and exits 0', async () => {
  const r = await runEdgeCli(['--help'])
  assert.equal(r.code, 0)
  assert.match(r.stdout, /--max-packet-bytes/)
})

test('bad configuration exits 2 with a message naming the field', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--mqtt-port', '70000'], /mqtt\.port/],
    [['--max-packet-bytes', 'lots'], /limits\.maxPacketBytes/],
    [['--flush-policy', 'sometimes'], /commitlog\.flushPolicy/],
    [['--tls-port', '8883'], /mqtt\.tlsCertFile/],
    [['--no-such-flag', '1'], /no-such-flag/]
  ]
  for (const [args, field] of cases) {
    const r = await runEdgeCli([...args, '--data-dir', dir.path])
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
    assert.match(r.stderr, field)
  }
})
