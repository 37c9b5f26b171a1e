// Order and completeness through a real aedes broker (src/mqtt/broker.ts) over real TCP with the
// `mqtt` client, with our persistence over a real CommitLog and LevelDB: a connected persistent
// QoS 1 subscriber gets every message of a publisher in order with no gaps (aedes issues
// #955/#994 lose some with an async persistence), then the same offline, then across a restart.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, connect as netConnect, type Server, type AddressInfo, type Socket } from 'node:net'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { CommitLog } from '../../src/commitlog/index.js'
import { silentLogger } from '../../src/log/index.js'
import { LevelMetaStore } from '../../src/meta/level.js'
import { createBroker, type TributaryBroker } from '../../src/mqtt/broker.js'
import { createPersistence, type LogPersistence } from '../../src/mqtt/persistence.js'
import { recordAppended } from '../../src/mqtt/record-offsets.js'
import { tempDir, waitFor } from '../helpers/net.js'

const TOPIC = 'plant/line1/seq'
const limits = { maxPacketBytes: 65536, maxConnections: 100, inflightWindow: 1000, maxTopicLength: 256, maxTopicLevels: 16, connectTimeoutMs: 5000 }

interface Stack { log: CommitLog, meta: LevelMetaStore, persistence: LogPersistence, broker: TributaryBroker, server: Server, url: string }

async function startStack (dir: string): Promise<Stack> {
  const logger = silentLogger()
  const log = await CommitLog.open({ dir: join(dir, 'log'), segmentBytes: 1 << 20, flushPolicy: 'interval', flushIntervalMs: 2, maxRecordBytes: 65536, retentionBytes: 0, retentionMs: 0, log: logger })
  const meta = await LevelMetaStore.open(join(dir, 'meta'))
  const persistence = createPersistence({ log, meta, logger })
  const broker = await createBroker({ log, persistence, config: limits, logger, onAppended: recordAppended })
  const server = createServer(broker.handle)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`
  return { log, meta, persistence, broker, server, url }
}

async function stopStack (s: Stack): Promise<void> {
  await new Promise<void>((resolve) => s.server.close(() => resolve()))
  await s.broker.close()
  await s.persistence.destroy()
  await s.meta.close()
  await s.log.close()
}

async function connect (url: string, clientId: string, clean: boolean): Promise<MqttClient> {
  const client = mqtt.connect(url, { clientId, clean, protocolVersion: 4, reconnectPeriod: 0, keepalive: 30 })
  await new Promise<void>((resolve, reject) => { client.once('connect', () => resolve()); client.once('error', reject) })
  return client
}

async function end (client: MqttClient): Promise<void> {
  await new Promise<void>((resolve) => client.end(false, {}, () => resolve()))
}

// Publishes seq numbers [from, to] at QoS 1 without waiting between them (pipelined, as a
// device with a backlog does) and resolves when every PUBACK has arrived.
async function publishRange (client: MqttClient, from: number, to: number): Promise<void> {
  const acks: Array<Promise<void>> = []
  for (let seq = from; seq <= to; seq++) {
    acks.push(new Promise<void>((resolve, reject) => {
      client.publish(TOPIC, String(seq), { qos: 1 }, (err) => { if (err != null) reject(err); else resolve() })
    }))
  }
  await Promise.all(acks)
}

function expectRange (got: number[], from: number, to: number, what: string): void {
  const want: number[] = []
  for (let seq = from; seq <= to; seq++) want.push(seq)
  if (got.length !== want.length || got.some((v, i) => v !== want[i])) {
    const firstBad = got.findIndex((v, i) => v !== want[i])
    assert.fail(`${what}: got ${got.length} of ${want.length}; first mismatch at index ${firstBad}: ${got[firstBad]} instead of ${want[firstBad]}`)
  }
}

function collector (client: MqttClient): number[] {
  const got: number[] = []
  client.on('message', (_topic, payload) => { got.push(Number(payload.toString())) })
  return got
}

const cleanups: Array<() => Promise<void>> = []
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}) })

test('persistent QoS 1 subscriber: 2000 live in order, then 500 queued offline, then 300 across a restart', async () => {
  const dir = await tempDir('mqtt-order')
  cleanups.push(dir.remove)
  let stack = await startStack(dir.path)
  let stopped = false
  cleanups.push(async () => { if (!stopped) await stopStack(stack) })

  // 1. Connected: 2000 messages from one publisher arrive in order, none missing.
  let sub = await connect(stack.url, 'order-sub', false)
  let got = collector(sub)
  await sub.subscribeAsync(TOPIC, { qos: 1 })
  const pub = await connect(stack.url, 'order-pub', true)
  await publishRange(pub, 1, 2000)
  await waitFor('2000 live messages', () => got.length >= 2000, 30_000)
  expectRange(got, 1, 2000, 'connected subscriber')
  // Every delivery acknowledged: nothing is left in flight for the session.
  await waitFor('acks processed', () => stack.persistence.sessionInfo('order-sub')?.tracked === 0)

  // No per-subscriber copies were written: the queue is the log.
  let copies = 0
  for await (const _ of stack.meta.scan('out:')) copies++
  assert.equal(copies, 0, 'log-backed messages must not be copied into the MetaStore')

  // 2. Offline: 500 more are queued (as a cursor) and delivered on reconnect, in order.
  await end(sub)
  await publishRange(pub, 2001, 2500)
  sub = await connect(stack.url, 'order-sub', false)
  got = collector(sub)
  await waitFor('500 queued messages', () => got.length >= 500, 30_000)
  await waitFor('acks processed', () => stack.persistence.sessionInfo('order-sub')?.tracked === 0)
  expectRange(got, 2001, 2500, 'reconnected subscriber')

  // 3. Offline across a broker restart: the session resumes where it stopped.
  await end(sub)
  await publishRange(pub, 2501, 2800)
  await end(pub)
  await stopStack(stack)
  stack = await startStack(dir.path)
  sub = await connect(stack.url, 'order-sub', false)
  got = collector(sub)
  await waitFor('300 messages queued before the restart', () => got.length >= 300, 30_000)
  // A little longer: nothing more (no replay of what was acked before the restart).
  await new Promise((resolve) => setTimeout(resolve, 200))
  expectRange(got, 2501, 2800, 'subscriber after restart')
  await end(sub)
  await stopStack(stack)
  stopped = true
})

test('three publishers at once: each one\'s messages reach a connected persistent subscriber in order, none missing', async () => {
  const dir = await tempDir('mqtt-order-multi')
  cleanups.push(dir.remove)
  const stack = await startStack(dir.path)
  cleanups.push(async () => { await stopStack(stack) })
  const sub = await connect(stack.url, 'multi-sub', false)
  const got = new Map<string, number[]>()
  sub.on('message', (_topic, payload) => {
    const [who, seq] = payload.toString().split(':')
    let list = got.get(who)
    if (list === undefined) { list = []; got.set(who, list) }
    list.push(Number(seq))
  })
  await sub.subscribeAsync('plant/+/seq', { qos: 1 })
  const pubs = await Promise.all(['a', 'b', 'c'].map(async (who) => await connect(stack.url, `multi-pub-${who}`, true)))
  const PER = 700
  await Promise.all(pubs.map(async (pub, i) => {
    const who = 'abc'[i]
    const acks: Array<Promise<unknown>> = []
    for (let seq = 1; seq <= PER; seq++) acks.push(pub.publishAsync(`plant/${who}/seq`, `${who}:${seq}`, { qos: 1 }))
    await Promise.all(acks)
  }))
  await waitFor('all messages', () => [...got.values()].reduce((n, l) => n + l.length, 0) >= 3 * PER, 30_000)
  for (const who of ['a', 'b', 'c']) expectRange(got.get(who) ?? [], 1, PER, `publisher ${who}`)
  await Promise.all([...pubs, sub].map(end))
})

test('QoS 2 persistent subscriber: live and offline messages arrive exactly once, in order', async () => {
  const dir = await tempDir('mqtt-order-qos2')
  cleanups.push(dir.remove)
  const stack = await startStack(dir.path)
  cleanups.push(async () => { await stopStack(stack) })
  let sub = await connect(stack.url, 'qos2-sub', false)
  let got = collector(sub)
  await sub.subscribeAsync(TOPIC, { qos: 2 })
  const pub = await connect(stack.url, 'qos2-pub', true)
  const publish = async (from: number, to: number): Promise<void> => {
    const acks: Array<Promise<unknown>> = []
    for (let seq = from; seq <= to; seq++) acks.push(pub.publishAsync(TOPIC, String(seq), { qos: 2 }))
    await Promise.all(acks)
  }
  await publish(1, 300)
  await waitFor('300 live QoS 2 messages', () => got.length >= 300, 30_000)
  await waitFor('handshakes completed', () => stack.persistence.sessionInfo('qos2-sub')?.tracked === 0)
  expectRange(got, 1, 300, 'connected QoS 2 subscriber')
  await end(sub)
  await publish(301, 500)
  sub = await connect(stack.url, 'qos2-sub', false)
  got = collector(sub)
  await waitFor('200 queued QoS 2 messages', () => got.length >= 200, 30_000)
  await waitFor('handshakes completed', () => stack.persistence.sessionInfo('qos2-sub')?.tracked === 0)
  expectRange(got, 301, 500, 'reconnected QoS 2 subscriber')
  await Promise.all([pub, sub].map(end))
})

// A bare MQTT 3.1.1 client (mqtt-packet over a socket) that acknowledges only when told to.
class RawClient {
  readonly packets: mqttPacket.Packet[] = []
  private readonly socket: Socket
  private readonly parser = mqttPacket.parser({ protocolVersion: 4 })
  constructor (port: number) {
    this.socket = netConnect(port, '127.0.0.1')
    this.socket.on('data', (data) => { this.parser.parse(data) })
    this.socket.on('error', () => {})
    this.parser.on('packet', (p) => { this.packets.push(p) })
  }

  send (packet: Record<string, unknown>): void { this.socket.write(mqttPacket.generate(packet as unknown as mqttPacket.Packet)) }
  publishes (): mqttPacket.IPublishPacket[] { return this.packets.filter((p): p is mqttPacket.IPublishPacket => p.cmd === 'publish') }
  async close (): Promise<void> { await new Promise<void>((resolve) => { this.socket.once('close', () => resolve()); this.socket.destroy() }) }
}

test('deliveries not acknowledged before a disconnect are resent on reconnect with the same packet identifier and DUP [MQTT-4.4.0-1]', async () => {
  const dir = await tempDir('mqtt-order-resend')
  cleanups.push(dir.remove)
  const stack = await startStack(dir.path)
  cleanups.push(async () => { await stopStack(stack) })
  const port = Number(new URL(stack.url).port)
  const connectPacket = { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, clientId: 'raw-sub', keepalive: 30 }

  let raw = new RawClient(port)
  raw.send(connectPacket)
  await waitFor('connack', () => raw.packets.some((p) => p.cmd === 'connack'))
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: TOPIC, qos: 1 }] })
  await waitFor('suback', () => raw.packets.some((p) => p.cmd === 'suback'))
  const pub = await connect(stack.url, 'resend-pub', true)
  await publishRange(pub, 1, 5)
  await waitFor('5 deliveries', () => raw.publishes().length >= 5)
  const first = raw.publishes()
  assert.deepEqual(first.map((p) => p.payload.toString()), ['1', '2', '3', '4', '5'])
  // Acknowledge only the first two, then drop the connection.
  raw.send({ cmd: 'puback', messageId: first[0].messageId })
  raw.send({ cmd: 'puback', messageId: first[1].messageId })
  await waitFor('two acks processed', () => stack.persistence.sessionInfo('raw-sub')?.tracked === 3)
  await raw.close()
  await waitFor('broker saw the disconnect', () => (stack.broker.aedes as unknown as { clients: Record<string, unknown> }).clients['raw-sub'] === undefined)
  await publishRange(pub, 6, 7)

  raw = new RawClient(port)
  raw.send(connectPacket)
  await waitFor('7 - 2 deliveries after reconnect', () => raw.publishes().length >= 5)
  const connack = raw.packets.find((p) => p.cmd === 'connack') as mqttPacket.IConnackPacket
  assert.equal(connack.sessionPresent, true)
  const again = raw.publishes()
  assert.deepEqual(again.map((p) => p.payload.toString()), ['3', '4', '5', '6', '7'])
  for (let i = 0; i < 3; i++) {
    assert.equal(again[i].messageId, first[i + 2].messageId, `message ${i + 3} keeps its packet identifier`)
    assert.equal(again[i].dup, true, `message ${i + 3} is marked DUP`)
  }
  assert.equal(again[3].dup, false)
  for (const p of again) raw.send({ cmd: 'puback', messageId: p.messageId })
  await waitFor('all acked', () => stack.persistence.sessionInfo('raw-sub')?.tracked === 0)
  await raw.close()
  await end(pub)
})
