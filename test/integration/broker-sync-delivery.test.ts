// src/mqtt/sync-delivery.ts: a QoS 1/2 delivery is handed to the subscriber's connection during
// the deliverQoS call that routing makes (aedes' own deliverQoS defers it to a setImmediate, whose
// corked write then leaves a loop turn later), with aedes' rules kept: dedupe by broker counter,
// packet identifiers, the delivery callback; and QoS 2 lowered to a QoS 1 wildcard subscription
// (which aedes only did for exact topics). Driven through
// a real broker and a real subscriber over TCP: deliverQoS is called on the broker's client object
// as aedes' routing (mqemitter) calls it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Socket, type AddressInfo } from 'node:net'
import mqtt from 'mqtt'
import { createBroker } from '../../src/mqtt/broker.js'
import { silentLogger } from '../../src/log/index.js'
import { ImmediateLog } from '../helpers/immediate-log.js'
import { waitFor } from '../helpers/net.js'

interface BrokerClient {
  deliverQoS: (packet: object, cb: (err?: Error | null) => void) => void
}

test('QoS 1/2 deliveries are written during deliverQoS, with aedes\' dedupe, downgrade and callbacks', async () => {
  const broker = await createBroker({
    log: new ImmediateLog(),
    config: { maxPacketBytes: 65536, maxConnections: 10, inflightWindow: 100, maxTopicLength: 64, maxTopicLevels: 8, connectTimeoutMs: 5000 },
    logger: silentLogger()
  })
  // Stream-level write calls on the broker's side of each connection.
  const writes = new Map<Socket, number>()
  const server = createServer((socket) => {
    writes.set(socket, 0)
    const write = socket.write.bind(socket) as (...args: unknown[]) => boolean
    ;(socket as unknown as { write: (...args: unknown[]) => boolean }).write = (...args: unknown[]) => {
      writes.set(socket, (writes.get(socket) ?? 0) + 1)
      return write(...args)
    }
    broker.handle(socket)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const sub = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: 'sync-sub', reconnectPeriod: 0 })
  try {
    const received: Array<{ topic: string, payload: string, qos: number, messageId?: number }> = []
    sub.on('message', (topic, payload, packet) => { received.push({ topic, payload: payload.toString(), qos: packet.qos, messageId: packet.messageId }) })
    await new Promise<void>((resolve, reject) => { sub.once('connect', () => { resolve() }); sub.once('error', reject) })
    await sub.subscribeAsync('sync/#', { qos: 1 })
    const client = (broker.aedes as unknown as { clients: Record<string, BrokerClient> }).clients['sync-sub']
    assert.ok(client !== undefined)
    const conn = [...writes.keys()][0] as Socket
    // Another broker's id (as from a cluster peer), so these counters do not touch the dedupe
    // state of this broker's own messages (the marker below).
    const brokerId = 'another-broker'
    const routed = (payload: string, qos: number, counter: number): object =>
      ({ cmd: 'publish', topic: 'sync/a', payload: Buffer.from(payload), qos, retain: false, dup: false, brokerId, brokerCounter: counter })

    // Written before deliverQoS returns (aedes' own deliverQoS writes in a later setImmediate).
    const before = writes.get(conn) ?? 0
    const delivered = new Promise<void>((resolve) => { client.deliverQoS(routed('one', 1, 1_000_000), () => { resolve() }) })
    assert.equal(writes.get(conn), before + 1, 'the delivery was handed to the connection within deliverQoS')
    await delivered

    // The same broker counter again: dedupe, nothing written, the callback still runs.
    const again = writes.get(conn) ?? 0
    await new Promise<void>((resolve) => { client.deliverQoS(routed('one-again', 1, 1_000_000), () => { resolve() }) })
    assert.equal(writes.get(conn), again, 'a duplicate (same broker counter) is not written')

    // QoS 2 to a QoS 1 subscription goes out at QoS 1.
    await new Promise<void>((resolve) => { client.deliverQoS(routed('two', 2, 1_000_001), () => { resolve() }) })

    await waitFor('both deliveries at the subscriber', () => received.length >= 2)
    // A round trip through the broker, so a stray duplicate would have arrived by now.
    await sub.publishAsync('sync/marker', 'marker', { qos: 1 })
    await waitFor('the marker', () => received.some((m) => m.payload === 'marker'))
    assert.deepEqual(received.map((m) => [m.payload, m.qos]), [['one', 1], ['two', 1], ['marker', 1]])
    const ids = received.map((m) => m.messageId)
    assert.ok(ids.every((id) => typeof id === 'number' && id > 0), 'packet identifiers assigned')
    assert.equal(new Set(ids).size, ids.length, 'distinct packet identifiers')
  } finally {
    await sub.endAsync()
    await broker.close()
    await new Promise<void>((resolve) => server.close(() => { resolve() }))
  }
})
