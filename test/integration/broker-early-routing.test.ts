// Route before durable, ack after durable (src/mqtt/broker.ts, early-routing.ts), through a real
// aedes broker over real TCP with the `mqtt` client. The commitlog is replaced by an appender
// whose durable callbacks the test releases by hand, so "not durable yet" lasts as long as the
// test needs: QoS 1 messages reach online subscribers before durable, in order and exactly once;
// the PUBACK waits for durable; QoS 2 is delivered only after durable; a publisher that vanishes
// before its PUBACK still had its message delivered; a will at QoS 1 is routed once.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createConnection, createServer, type AddressInfo, type Server } from 'node:net'
import mqttPacket from 'mqtt-packet'
import mqtt, { type MqttClient } from 'mqtt'
import type { AppendInput, AppendResult, DurableCallback } from '../../src/commitlog/types.js'
import { silentLogger } from '../../src/log/index.js'
import { createBroker, type DurableAppender, type TributaryBroker } from '../../src/mqtt/broker.js'
import { waitFor } from '../helpers/net.js'

const limits = { maxPacketBytes: 65536, maxConnections: 100, inflightWindow: 1000, maxTopicLength: 256, maxTopicLevels: 16, connectTimeoutMs: 5000 }

// Appends are recorded; their durable callbacks fire only on release(), or soon when `auto`, or
// inside append() when `sync` (an appender may; the broker must not route twice then).
class HeldLog implements DurableAppender {
  readonly appended: AppendInput[] = []
  private readonly held: DurableCallback[] = []
  private end = 0
  auto = false
  sync = false

  append (input: AppendInput, onDurable: DurableCallback): AppendResult {
    this.appended.push(input)
    const offset = this.end
    this.end += 100
    if (this.sync) onDurable(null)
    else if (this.auto) setImmediate(() => { onDurable(null) })
    else this.held.push(onDurable)
    return { offset, nextOffset: this.end, timestampMs: Date.now(), topicOffset: this.appended.length - 1 }
  }

  get waiting (): number { return this.held.length }

  release (): void {
    const fns = this.held.splice(0)
    for (const fn of fns) fn(null)
  }
}

interface Stack { log: HeldLog, broker: TributaryBroker, server: Server, url: string }
const stacks: Stack[] = []
const clients: MqttClient[] = []

after(async () => {
  for (const c of clients) c.end(true)
  for (const s of stacks) {
    s.log.release()
    await new Promise<void>((resolve) => s.server.close(() => resolve()))
    await s.broker.close()
  }
})

async function startStack (): Promise<Stack> {
  const log = new HeldLog()
  const broker = await createBroker({ log, config: limits, logger: silentLogger() })
  const server = createServer(broker.handle)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const stack = { log, broker, server, url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}` }
  stacks.push(stack)
  return stack
}

async function connect (url: string, clientId: string, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { clientId, protocolVersion: 4, reconnectPeriod: 0, ...opts })
  clients.push(client)
  return client
}

function collect (client: MqttClient): string[] {
  const got: string[] = []
  client.on('message', (_topic, payload) => { got.push(payload.toString()) })
  return got
}

test('QoS 1: subscribers get the messages before they are durable, in order, once; the PUBACKs wait for durable', async () => {
  const { log, url } = await startStack()
  const sub = await connect(url, 'sub-1')
  await sub.subscribeAsync('early/#', { qos: 1 })
  const got = collect(sub)
  const pub = await connect(url, 'pub-1')
  const N = 200
  let acked = 0
  for (let i = 0; i < N; i++) pub.publish('early/seq', String(i), { qos: 1 }, (err) => { if (err == null) acked++ })
  // aedes reads a socket's next chunk only when every packet of the current one is done (acked),
  // so a first batch of appends waits for durable: each of them is delivered already.
  await waitFor('appended messages delivered while none is durable', () => log.appended.length > 0 && got.length === log.appended.length, 10_000)
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.equal(acked, 0, 'a PUBACK went out before its record was durable')
  assert.equal(log.waiting, log.appended.length)
  assert.equal(got.length, log.appended.length)
  while (acked < N) {
    log.release()
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  assert.deepEqual(got, Array.from({ length: N }, (_, i) => String(i)), 'delivered out of order, or not once')
  // aedes calls publish again after each PUBACK: that call must not route a second time.
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.equal(got.length, N, 'a message was routed twice')
  assert.equal(log.appended.length, N, 'one append per message')
})

test('QoS 2 is delivered only after its record is durable', async () => {
  const { log, url } = await startStack()
  const sub = await connect(url, 'sub-2')
  await sub.subscribeAsync('exact/#', { qos: 2 })
  const got = collect(sub)
  const pub = await connect(url, 'pub-2')
  let done = false
  pub.publish('exact/one', 'x', { qos: 2 }, (err) => { if (err == null) done = true })
  await waitFor('the append', () => log.appended.length === 1, 10_000)
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.equal(got.length, 0, 'a QoS 2 message was delivered before durable')
  log.release()
  await waitFor('the QoS 2 flow completes', () => done && got.length === 1, 10_000)
})

test('a publisher that vanishes before its PUBACK: the message was delivered, the broker carries on', async () => {
  const { log, url } = await startStack()
  const sub = await connect(url, 'sub-3')
  await sub.subscribeAsync('gone/#', { qos: 1 })
  const got = collect(sub)
  const pub = await connect(url, 'pub-3')
  pub.publish('gone/one', 'before-vanish', { qos: 1 })
  await waitFor('delivered before durable', () => got.length === 1, 10_000)
  pub.end(true) // the socket is gone before the PUBACK
  await waitFor('the publisher gone', () => pub.disconnected || !pub.connected, 10_000)
  log.release()
  // Another publisher still gets through, and the first message was not delivered again.
  log.auto = true
  const pub2 = await connect(url, 'pub-3b')
  await pub2.publishAsync('gone/two', 'after', { qos: 1 })
  await waitFor('the next message', () => got.length === 2, 10_000)
  assert.deepEqual(got, ['before-vanish', 'after'])
})

test('a QoS 1 will is appended once and routed once', async () => {
  const { log, url } = await startStack()
  log.auto = true
  const sub = await connect(url, 'sub-4')
  await sub.subscribeAsync('wills/#', { qos: 1 })
  const got = collect(sub)
  const dying = await connect(url, 'dying-4', { will: { topic: 'wills/dying-4', payload: Buffer.from('gone'), qos: 1, retain: false } })
  dying.stream.destroy() // no DISCONNECT: the will is published
  await waitFor('the will delivered', () => got.length === 1, 10_000)
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.deepEqual(got, ['gone'])
  assert.equal(log.appended.filter((a) => a.topic === 'wills/dying-4').length, 1)
})

test('an appender that is durable inside append(): each QoS 1 message is routed once and acked', async () => {
  const { log, url } = await startStack()
  log.sync = true
  const sub = await connect(url, 'sub-5')
  await sub.subscribeAsync('sync/#', { qos: 1 })
  const got = collect(sub)
  const pub = await connect(url, 'pub-5')
  for (let i = 0; i < 20; i++) await pub.publishAsync('sync/seq', String(i), { qos: 1 })
  await waitFor('20 deliveries', () => got.length >= 20, 10_000)
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => String(i)))
})

test('QoS 1 read-ahead: a chunk of several publishes waiting for durable does not stop the next chunk from being read and delivered; PUBACKs still wait', async () => {
  const { log, url } = await startStack()
  const sub = await connect(url, 'sub-ra')
  await sub.subscribeAsync('ahead/#', { qos: 1 })
  const got = collect(sub)
  // A raw connection, so that each write is one socket chunk of exactly the packets given. aedes
  // reads a connection's next chunk only when every packet of the current one is done (after its
  // PUBACK, i.e. durable, never here), and a 'readable' event counts down only one packet.
  const port = Number(new URL(url).port)
  const raw = createConnection(port, '127.0.0.1')
  const acks: number[] = []
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  parser.on('packet', (p) => { if (p.cmd === 'puback') acks.push(p.messageId as number) })
  raw.on('data', (b) => { parser.parse(b) })
  after(() => { raw.destroy() })
  raw.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'pub-ra', keepalive: 0 }))
  let id = 1
  const publish = (): Buffer => mqttPacket.generate({ cmd: 'publish', topic: 'ahead/seq', payload: String(id), qos: 1, messageId: id++, retain: false, dup: false })
  for (let chunk = 0; chunk < 4; chunk++) {
    raw.write(Buffer.concat([publish(), publish(), publish()]))
    await waitFor(`chunk ${chunk} delivered while nothing is durable`, () => got.length === 3 * (chunk + 1), 5_000)
  }
  assert.deepEqual(acks, [], 'a PUBACK went out before its record was durable')
  log.release()
  await waitFor('all PUBACKs', () => acks.length === 12, 5_000)
  assert.deepEqual(acks, Array.from({ length: 12 }, (_, i) => i + 1), 'PUBACKs out of order')
  assert.deepEqual(got, Array.from({ length: 12 }, (_, i) => String(i + 1)))
})
