// Persistent sessions of cloud subscribers move between cloud nodes (issue 5): a real 3-node NATS
// cluster, two real `tributary cloud --store nats://...` nodes (A, B), a real edge bridged to A
// (B is its second URL). A subscriber with clean=false may reconnect to either node and gets
// exactly what it missed, in order, then the live messages; a second connection with the same
// client id at the other node takes the session over; a SIGKILL of the holding node loses
// nothing the client had not acked. Each test uses its own topic and client id.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import mqtt, { type MqttClient } from 'mqtt'
import { waitFor } from '../helpers/net.js'
import type { NatsCluster } from '../helpers/nats-cluster.js'
import type { EdgeProcess } from '../helpers/edge-process.js'
import { clusterAvailable, drained, sleep, startCluster, startClusterCloud, startClusterEdge, type CloudNodeHandle } from './cluster-harness.js'

const dirs: Array<{ remove: () => Promise<void> }> = []
let nats: NatsCluster | undefined
let nodeA: CloudNodeHandle | undefined
let nodeB: CloudNodeHandle | undefined
let edge: EdgeProcess | undefined
let available = false

before(async () => {
  available = clusterAvailable({ skip: () => {} })
  if (!available) return
  nats = await startCluster()
  nodeA = await startClusterCloud(nats, 'node-a', dirs)
  nodeB = await startClusterCloud(nats, 'node-b', dirs)
  edge = await startClusterEdge('edge-a', [nodeA.proc.bridgeUrl, nodeB.proc.bridgeUrl], dirs)
})

after(async () => {
  await edge?.kill()
  await nodeA?.proc.kill()
  await nodeB?.proc.kill()
  await nats?.stop()
  for (const d of dirs) await d.remove()
})

interface Session {
  client: MqttClient
  got: string[]
  qos: number[]
  sessionPresent: boolean
  closed: () => boolean
}

// A clean=false connection that records every message's payload and QoS.
async function connectSession (node: CloudNodeHandle, clientId: string, into?: Session): Promise<Session> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${node.proc.mqttPort}`, { clientId, clean: false, reconnectPeriod: 0, protocolVersion: 4 })
  let isClosed = false
  client.on('close', () => { isClosed = true })
  const s: Session = into ?? { client, got: [], qos: [], sessionPresent: false, closed: () => isClosed }
  s.client = client
  s.closed = () => isClosed
  client.on('message', (_topic, payload, packet) => { s.got.push(payload.toString()); s.qos.push(packet.qos) })
  s.sessionPresent = await new Promise<boolean>((resolve, reject) => {
    client.once('connect', (connack) => { resolve(connack.sessionPresent) })
    client.once('error', reject)
  })
  return s
}

async function publishAtEdge (name: string, from: number, to: number, qos: 1 | 2 = 1): Promise<void> {
  const c = await mqtt.connectAsync(edge!.url, { clientId: `dev-${name}-${from}`, reconnectPeriod: 0 })
  for (let i = from; i < to; i++) await c.publishAsync(`devices/${name}/t`, `m${i}`, { qos })
  await c.endAsync()
  await waitFor('edge drained into the store', async () => await drained(edge!), 30_000)
}

const range = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `m${from + i}`)

test('a persistent subscriber moves A -> B -> A: each time exactly what it missed, in order, then live; no node delivers twice', { timeout: 60_000 }, async (t) => {
  if (!available) { t.skip('nats-server not installed'); return }
  const filter = 'up/edge-a/devices/move/#'
  const s = await connectSession(nodeA!, 'app-move')
  assert.equal(s.sessionPresent, false)
  await s.client.subscribeAsync(filter, { qos: 1 })
  await publishAtEdge('move', 0, 10)
  await waitFor('live at A', () => s.got.length >= 10, 20_000)
  await s.client.endAsync()
  await sleep(300) // A writes the final cursor

  await publishAtEdge('move', 10, 30) // while away; both nodes run
  await connectSession(nodeB!, 'app-move', s)
  assert.equal(s.sessionPresent, true, 'node B found the session [MQTT-3.2.2-2]')
  await waitFor('missed messages at B', () => s.got.length >= 30, 20_000)
  await publishAtEdge('move', 30, 40) // live at B
  await waitFor('live at B', () => s.got.length >= 40, 20_000)
  await s.client.endAsync()
  await sleep(300)

  await publishAtEdge('move', 40, 50)
  await connectSession(nodeA!, 'app-move', s)
  assert.equal(s.sessionPresent, true)
  await waitFor('missed messages back at A', () => s.got.length >= 50, 20_000)
  await sleep(1000) // room for a duplicate to show up
  await s.client.endAsync()
  assert.deepEqual(s.got, range(0, 50))
  assert.ok(s.qos.every((q) => q === 1))
})

test('the same client id connected at A and then at B: B takes the session over, A drops its connection, QoS 2 preserved', { timeout: 60_000 }, async (t) => {
  if (!available) { t.skip('nats-server not installed'); return }
  const filter = 'up/edge-a/devices/take/#'
  const first = await connectSession(nodeA!, 'app-take')
  await first.client.subscribeAsync(filter, { qos: 2 })
  await publishAtEdge('take', 0, 5, 2)
  await waitFor('live at A', () => first.got.length >= 5, 20_000)
  await sleep(300) // the QoS 2 exchanges (PUBREC, PUBREL, PUBCOMP) of m0..m4 complete

  const second = await connectSession(nodeB!, 'app-take')
  assert.equal(second.sessionPresent, true)
  await waitFor('node A closed the old connection', () => first.closed(), 10_000)
  await publishAtEdge('take', 5, 15, 2)
  await waitFor('messages at B', () => second.got.length >= 10, 20_000)
  await sleep(1000)
  await second.client.endAsync()
  assert.deepEqual(first.got, range(0, 5))
  assert.deepEqual(second.got, range(5, 15), 'the new holder gets everything after the takeover, once')
  assert.ok(second.qos.every((q) => q === 2), `QoS 2 kept: ${second.qos.join(',')}`)
})

test('node A SIGKILLed while holding a session: the subscriber resumes at B with what it missed, then live', { timeout: 60_000 }, async (t) => {
  if (!available) { t.skip('nats-server not installed'); return }
  const s = await connectSession(nodeA!, 'app-kill')
  await s.client.subscribeAsync('up/edge-a/devices/kill/#', { qos: 1 })
  await publishAtEdge('kill', 0, 10)
  await waitFor('live at A', () => s.got.length >= 10, 20_000)
  await sleep(1000) // acked, and the cursor written (it is batched every 250 ms)
  await nodeA!.proc.kill()
  await waitFor('the subscriber saw the node die', () => s.closed(), 10_000)

  await publishAtEdge('kill', 10, 30) // the edge fails over to B
  await connectSession(nodeB!, 'app-kill', s)
  assert.equal(s.sessionPresent, true)
  await waitFor('missed messages at B', () => s.got.length >= 30, 20_000)
  await publishAtEdge('kill', 30, 40)
  await waitFor('live at B', () => s.got.length >= 40, 20_000)
  await sleep(1000)
  await s.client.endAsync()
  assert.deepEqual(s.got, range(0, 40))
})
