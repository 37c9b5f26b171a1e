// In-process tests of src/mqtt/broker.ts over real TCP sockets with the `mqtt` client, against a
// controllable commitlog double: durable acks (no PUBACK/PUBREC before the append is durable, none
// after a failed append), what gets appended, and the limits.
import { test, before, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, connect as tcpConnect, type Server, type AddressInfo } from 'node:net'
import mqtt, { type MqttClient } from 'mqtt'
import { createBroker, type DurableAppender, type TributaryBroker } from '../../src/mqtt/broker.js'
import type { AppendInput, AppendResult, DurableCallback } from '../../src/commitlog/types.js'
import { tributaryError } from '../../src/errors/index.js'
import { silentLogger } from '../../src/log/index.js'
import { waitFor } from '../helpers/net.js'

// A commitlog double: records appends; durable callbacks fire in order, at once or when released.
class ControlledLog implements DurableAppender {
  records: AppendInput[] = []
  held: DurableCallback[] = []
  hold = false
  failNext: Error | undefined
  private offset = 0

  append (input: AppendInput, onDurable: DurableCallback): AppendResult {
    this.records.push(input)
    const offset = this.offset
    this.offset += 100
    if (this.failNext !== undefined) {
      const err = this.failNext
      this.failNext = undefined
      setImmediate(onDurable, err)
    } else if (this.hold) this.held.push(onDurable)
    else setImmediate(onDurable, null)
    return { offset, nextOffset: this.offset, timestampMs: Date.now(), topicOffset: 0 }
  }

  release (): void {
    const held = this.held
    this.held = []
    for (const cb of held) cb(null)
  }
}

const limits = {
  maxPacketBytes: 4096,
  maxConnections: 8,
  inflightWindow: 10,
  maxTopicLength: 64,
  maxTopicLevels: 4,
  connectTimeoutMs: 300
}

let log: ControlledLog
let broker: TributaryBroker
let server: Server
let url: string
const clients: MqttClient[] = []

before(async () => {
  log = new ControlledLog()
  broker = await createBroker({ log, config: limits, logger: silentLogger() })
  server = createServer(broker.handle)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`
})

after(async () => {
  for (const c of clients) c.end(true)
  await broker.close()
  await new Promise<void>((resolve) => server.close(() => { resolve() }))
})

afterEach(async () => {
  for (const c of clients.splice(0)) c.end(true)
  await waitFor('connections to close', () => broker.gate.active === 0)
})

async function client (opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts })
  clients.push(c)
  return c
}

test('QoS 1 PUBACK waits for the durable append, and the record holds topic, payload, qos, retain, client id', async () => {
  const c = await client({ clientId: 'durable-1' })
  log.hold = true
  let acked = false
  const published = c.publishAsync('d/1', 'hello', { qos: 1 }).then(() => { acked = true })
  await waitFor('the append', () => log.records.some((r) => r.topic === 'd/1'))
  // Give the broker ample turns to (wrongly) ack before the record is durable.
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.equal(acked, false, 'PUBACK arrived before the append was durable')
  log.hold = false
  log.release()
  await published
  assert.equal(acked, true)
  const rec = log.records.find((r) => r.topic === 'd/1')!
  assert.deepEqual({ ...rec, payload: rec.payload.toString() }, { topic: 'd/1', payload: 'hello', qos: 1, retain: false, clientId: 'durable-1' })
})

test('QoS 2 PUBREC waits for the durable append; the message is appended once', async () => {
  const c = await client({ clientId: 'durable-2' })
  log.hold = true
  let done = false
  const published = c.publishAsync('d/2', 'two', { qos: 2 }).then(() => { done = true })
  await waitFor('the append', () => log.records.some((r) => r.topic === 'd/2'))
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.equal(done, false)
  log.hold = false
  log.release()
  await published
  assert.equal(log.records.filter((r) => r.topic === 'd/2').length, 1)
})

test('QoS 0 is appended and delivered without waiting for durability', async () => {
  const sub = await client()
  await sub.subscribeAsync('q0/#', { qos: 0 })
  const got: string[] = []
  sub.on('message', (topic, payload) => { if (topic === 'q0/a') got.push(payload.toString()) })
  const pub = await client({ clientId: 'q0-pub' })
  log.hold = true
  try {
    await pub.publishAsync('q0/a', 'zero', { qos: 0 })
    await waitFor('QoS 0 delivery while the log holds its flush', () => got.length === 1)
    assert.ok(log.records.some((r) => r.topic === 'q0/a' && r.qos === 0))
  } finally {
    log.hold = false
    log.release()
  }
})

test('publishes of one client reach a subscriber in order', async () => {
  const sub = await client()
  await sub.subscribeAsync('order/#', { qos: 1 })
  const got: number[] = []
  sub.on('message', (topic, payload) => { if (topic === 'order/x') got.push(Number(payload.toString())) })
  const pub = await client()
  const sends: Array<Promise<unknown>> = []
  for (let i = 0; i < 500; i++) sends.push(pub.publishAsync('order/x', String(i), { qos: 1 }))
  await Promise.all(sends)
  await waitFor('500 messages', () => got.length === 500)
  assert.deepEqual(got, Array.from({ length: 500 }, (_, i) => i))
  const appended = log.records.filter((r) => r.topic === 'order/x').map((r) => Number(r.payload.toString()))
  assert.deepEqual(appended, got, 'log order = publish order')
})

test('a failed append acks nothing and closes only that client', async () => {
  const other = await client()
  const c = await client({ clientId: 'fails' })
  let acked = false
  const closed = new Promise<void>((resolve) => c.once('close', () => { resolve() }))
  log.failNext = tributaryError('TRIB_ERR_LOG_IO', 'disk full (simulated)')
  c.publish('fail/1', 'x', { qos: 1 }, (err) => { if (err == null) acked = true })
  await closed
  assert.equal(acked, false)
  assert.equal(broker.stats.appendFailures >= 1, true)
  await other.publishAsync('fail/other', 'fine', { qos: 1 })
})

test('$SYS topics and overlong or too deep topics are refused and not appended', async () => {
  for (const topic of ['$SYS/fake', 'x'.repeat(65), 'a/b/c/d/e']) {
    const c = await client()
    const closed = new Promise<void>((resolve) => c.once('close', () => { resolve() }))
    c.publish(topic, 'x', { qos: 1 })
    await closed
    assert.equal(log.records.some((r) => r.topic === topic), false, topic)
  }
})

test('a subscription to an overlong filter is refused with 0x80, the connection stays', async () => {
  const c = await client()
  // mqtt 5 turns a 0x80 return code into an error carrying the SUBACK.
  await assert.rejects(c.subscribeAsync('y'.repeat(65), { qos: 1 }), (err: Error & { packet?: { granted?: number[] } }) => {
    assert.deepEqual(err.packet?.granted, [128])
    return true
  })
  await c.publishAsync('still/up', 'ok', { qos: 1 })
})

test('an oversize packet closes only that connection', async () => {
  const other = await client()
  const c = await client()
  const closed = new Promise<void>((resolve) => c.once('close', () => { resolve() }))
  c.publish('big', Buffer.alloc(5000), { qos: 0 })
  await closed
  assert.equal(log.records.some((r) => r.topic === 'big'), false)
  assert.ok(broker.stats.packetTooLarge >= 1)
  await other.publishAsync('after/big', 'ok', { qos: 1 })
})

test('a connection that sends nothing is closed after the connect timeout', async () => {
  const sock = tcpConnect((server.address() as AddressInfo).port, '127.0.0.1')
  await new Promise<void>((resolve) => sock.once('connect', () => { resolve() }))
  await new Promise<void>((resolve) => sock.once('close', () => { resolve() }))
})

test('connections beyond maxConnections are refused', async () => {
  const held: MqttClient[] = []
  for (let i = 0; i < limits.maxConnections; i++) held.push(await client())
  const refusedBefore = broker.gate.refused
  // The broker closes the refused socket before CONNACK.
  const refused = mqtt.connect(url, { reconnectPeriod: 0 })
  let connected = false
  refused.on('connect', () => { connected = true })
  await new Promise<void>((resolve) => refused.once('close', () => { resolve() }))
  refused.end(true)
  assert.equal(connected, false)
  assert.equal(broker.gate.refused, refusedBefore + 1)
  await held[0].publishAsync('still/serving', 'ok', { qos: 1 })
})

test('DurableQueue keeps FIFO order across growth and wrap-around', async () => {
  const { DurableQueue } = await import('../../src/mqtt/durable-queue.js')
  const q = new DurableQueue(16)
  const fired: number[] = []
  let next = 0
  let expected = 0
  // Interleave pushes and shifts so the ring wraps, then grows while wrapped.
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < round; i++) { const n = next++; q.push(() => { fired.push(n) }, n) }
    for (let i = 0; i < Math.floor(round / 2); i++) {
      const cb = q.shift()
      assert.equal(q.startedAtOfShifted, expected++)
      cb?.(null)
    }
  }
  while (q.length > 0) { q.shift()?.(null); expected++ }
  assert.deepEqual(fired, Array.from({ length: next }, (_, i) => i))
  assert.throws(() => q.shift())
})
