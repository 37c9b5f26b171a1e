// src/mqtt/corked-writes.ts: the deliveries aedes produces for one incoming socket read leave in
// a few socket writes, not one write per packet (aedes delivers each packet in its own
// setImmediate, so mqtt-packet's own cork-until-nextTick never batched them). Counted at the
// stream level on the broker's side of the subscriber's connection (_write/_writev calls).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, connect as tcpConnect, type Socket, type AddressInfo } from 'node:net'
import mqttPacket from 'mqtt-packet'
import mqtt from 'mqtt'
import { createBroker } from '../../src/mqtt/broker.js'
import { silentLogger } from '../../src/log/index.js'
import { ImmediateLog } from '../helpers/immediate-log.js'
import { waitFor } from '../helpers/net.js'

const MESSAGES = 50

interface CountedSocket extends Socket { _write: (...args: unknown[]) => void, _writev: (...args: unknown[]) => void }

test('deliveries of one publisher read reach a subscriber in a few writes, complete and in order', async () => {
  const broker = await createBroker({
    log: new ImmediateLog(),
    config: { maxPacketBytes: 65536, maxConnections: 10, inflightWindow: 100, maxTopicLength: 64, maxTopicLevels: 8, connectTimeoutMs: 5000 },
    logger: silentLogger()
  })
  const serverSockets: Array<{ socket: Socket, writes: number }> = []
  const server = createServer(broker.handle)
  server.on('connection', (socket) => {
    const entry = { socket, writes: 0 }
    const s = socket as CountedSocket
    const write = s._write; const writev = s._writev
    s._write = function (...args: unknown[]) { entry.writes++; write.apply(this, args) }
    s._writev = function (...args: unknown[]) { entry.writes++; writev.apply(this, args) }
    serverSockets.push(entry)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const sub = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: 'corked-sub', reconnectPeriod: 0 })
  let publisher: Socket | undefined
  try {
    const received: string[] = []
    sub.on('message', (_topic, payload) => { received.push(payload.toString()) })
    await new Promise<void>((resolve, reject) => { sub.once('connect', () => { resolve() }); sub.once('error', reject) })
    await sub.subscribeAsync('corked/#', { qos: 0 })
    const subSide = serverSockets[0]
    assert.ok(subSide !== undefined)

    // Raw publisher: CONNECT, then all PUBLISH packets in one write, so the broker parses them
    // from one socket read.
    const pub = tcpConnect({ host: '127.0.0.1', port })
    publisher = pub
    await new Promise<void>((resolve, reject) => { pub.once('connect', () => { resolve() }); pub.once('error', reject) })
    pub.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'corked-pub', clean: true, keepalive: 0 }))
    await new Promise<void>((resolve) => pub.once('data', () => { resolve() })) // CONNACK
    const writesBefore = subSide.writes
    const packets = Array.from({ length: MESSAGES }, (_, i) => mqttPacket.generate({ cmd: 'publish', topic: 'corked/t', payload: Buffer.from(`m${i}`), qos: 0, dup: false, retain: false }))
    pub.write(Buffer.concat(packets))

    await waitFor('all deliveries', () => received.length >= MESSAGES, 10_000)
    assert.deepEqual(received, Array.from({ length: MESSAGES }, (_, i) => `m${i}`))
    const writes = subSide.writes - writesBefore
    // One write per packet without the batching (50); with it, one per loop turn that produced
    // deliveries. A handful leaves room for the read being split by the kernel.
    assert.ok(writes <= 5, `expected the ${MESSAGES} deliveries in at most 5 writes, got ${writes}`)
  } finally {
    publisher?.destroy()
    await sub.endAsync(true)
    await broker.close()
    await new Promise<void>((resolve) => server.close(() => { resolve() }))
  }
})
