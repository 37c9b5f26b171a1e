// A persistent session resumed after a disconnect re-sends what was not acknowledged with the
// ORIGINAL packet ids [MQTT-4.4.0-1], checked packet by packet with a raw MQTT client:
// - QoS 1 unacked: the PUBLISH again, same id, DUP=1 [MQTT-3.3.1-1];
// - QoS 2 after PUBREC, before PUBCOMP: the PUBREL again with the same id, never the PUBLISH
//   (exactly once);
// - QoS 2 before PUBREC: the PUBLISH again, same id, DUP=1;
// - acked ones: nothing; new ones: the following ids, DUP=0.
// On one node (embedded store: reconnect, then a second connection taking the session over),
// across two nodes sharing a NATS store (the session moves, then a takeover moves it back), and
// after the holding node (a real process) is SIGKILLed right after sending a PUBREL.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { tempDir, waitFor } from '../helpers/net.js'
import { startNatsCluster, type NatsCluster } from '../helpers/nats-cluster.js'
import { startTestCloud } from './bridge-helpers.js'
import { clusterAvailable } from './cluster-harness.js'
import { RawClient, type RawPublish } from './raw-session-client.js'
import { startCloudProcess, type CloudProcess } from '../helpers/cloud-process.js'
import { silentLogger } from '../../src/log/index.js'
import { JetStreamSessionKV } from '../../cloud/sessions/kv-jetstream.js'
import type { CloudNode } from '../../cloud/node.js'
import { OTHER_MIN_PACKET_ID } from '../../cloud/sessions/record.js'
import type { Lease } from '../../cloud/store/types.js'

async function leaseOf (node: CloudNode, edgeId = 'edge-a'): Promise<Lease> {
  const acquired = await node.store.acquireLease(edgeId, `test-${Math.random()}`, 60_000, Date.now())
  assert.equal(acquired.status, 'ok')
  return (acquired as { lease: Lease }).lease
}

// Records from..to-1 on devices/<name>/t at `qos`; edge offsets continue from `from`.
async function append (node: CloudNode, lease: Lease, from: number, to: number, name: string, qos: 1 | 2, edgeId = 'edge-a'): Promise<void> {
  const records = []
  for (let i = from; i < to; i++) records.push({ offset: i, nextOffset: i + 1, timestampMs: Date.now(), qos, retain: false, topic: `devices/${name}/t`, payload: Buffer.from(`m${i}`) })
  const out = await node.store.appendBatch(edgeId, { fromOffset: from, toOffset: to, records }, lease)
  assert.equal(out.status, 'ok')
}

type Taken = RawPublish | { cmd: 'pubrel', messageId: number }
const pub = (x: Taken): RawPublish => { assert.ok(!('cmd' in x), `a PUBLISH, got ${JSON.stringify(x)}`); return x as RawPublish }
const short = (xs: Taken[]): string[] => xs.map((x) => 'cmd' in x ? `pubrel:${x.messageId}` : `${x.payload}:q${x.qos}:${x.messageId}${x.dup ? ':dup' : ''}`)

// The first life of the session: q1 (QoS 1) m0..m2, q2 (QoS 2) m3..m5. Acks: PUBACK m0; PUBREC m3
// (PUBCOMP owed); PUBREC + PUBCOMP m4; nothing for m1, m2, m5. Returns the ids by payload.
async function firstLife (c: RawClient, node: CloudNode, lease: Lease, prefix: string): Promise<Map<string, number>> {
  await c.subscribe([{ topic: `up/edge-a/devices/${prefix}1/#`, qos: 1 }, { topic: `up/edge-a/devices/${prefix}2/#`, qos: 2 }])
  await append(node, lease, 0, 3, `${prefix}1`, 1)
  await append(node, lease, 3, 6, `${prefix}2`, 2)
  const got = (await c.take(6)).map(pub)
  assert.deepEqual(got.map((p) => [p.payload, p.qos, p.dup]), [['m0', 1, false], ['m1', 1, false], ['m2', 1, false], ['m3', 2, false], ['m4', 2, false], ['m5', 2, false]])
  const ids = new Map(got.map((p) => [p.payload, p.messageId]))
  assert.equal(new Set(ids.values()).size, 6, 'distinct packet ids')
  c.send({ cmd: 'puback', messageId: ids.get('m0') })
  c.send({ cmd: 'pubrec', messageId: ids.get('m3') })
  c.send({ cmd: 'pubrec', messageId: ids.get('m4') })
  const rels = await c.take(2)
  assert.deepEqual(short(rels), [`pubrel:${ids.get('m3')!}`, `pubrel:${ids.get('m4')!}`])
  c.send({ cmd: 'pubcomp', messageId: ids.get('m4') })
  await c.sync()
  return ids
}

// What a resumed connection must get first: m3's PUBREL, then m1, m2, m5 with their ids, DUP=1.
async function expectResent (c: RawClient, ids: Map<string, number>): Promise<void> {
  const again = await c.take(4)
  assert.deepEqual(short(again), [`pubrel:${ids.get('m3')!}`, `m1:q1:${ids.get('m1')!}:dup`, `m2:q1:${ids.get('m2')!}:dup`, `m5:q2:${ids.get('m5')!}:dup`])
  await c.sync()
  assert.deepEqual(c.pending('publish'), [], 'm0 (PUBACK), m3 (PUBREC), m4 (PUBCOMP) are not published again')
}

// Completes everything owed, then a new message gets a fresh id and DUP=0.
async function finish (c: RawClient, node: CloudNode, lease: Lease, ids: Map<string, number>, prefix: string): Promise<void> {
  c.send({ cmd: 'pubcomp', messageId: ids.get('m3') })
  c.send({ cmd: 'puback', messageId: ids.get('m1') })
  c.send({ cmd: 'puback', messageId: ids.get('m2') })
  c.send({ cmd: 'pubrec', messageId: ids.get('m5') })
  assert.deepEqual(short(await c.take(1)), [`pubrel:${ids.get('m5')!}`])
  c.send({ cmd: 'pubcomp', messageId: ids.get('m5') })
  await append(node, lease, 6, 7, `${prefix}1`, 1)
  const [m6] = (await c.take(1)).map(pub)
  assert.equal(m6.payload, 'm6')
  assert.equal(m6.dup, false)
  assert.ok(![...ids.values()].includes(m6.messageId), 'a new id')
  c.send({ cmd: 'puback', messageId: m6.messageId })
  await c.sync()
  assert.deepEqual(c.pending('publish'), [], 'nothing more')
}

test('one node (embedded store): reconnect and takeover re-send with the original packet ids; QoS 2 resumes with PUBREL', { timeout: 30_000 }, async () => {
  const dir = await tempDir('cloud-sess-ids')
  const node = await startTestCloud(dir.path)
  const clients: RawClient[] = []
  try {
    const lease = await leaseOf(node)
    const first = await RawClient.connect(node.mqttPort, 'raw-app')
    clients.push(first.client)
    assert.equal(first.sessionPresent, false)
    const ids = await firstLife(first.client, node, lease, 'a')
    await first.client.disconnect()

    const second = await RawClient.connect(node.mqttPort, 'raw-app')
    clients.push(second.client)
    assert.equal(second.sessionPresent, true)
    await expectResent(second.client, ids)

    // A second connection while this one is open (session takeover [MQTT-3.1.4-2]): the same again.
    const third = await RawClient.connect(node.mqttPort, 'raw-app')
    clients.push(third.client)
    await waitFor('the earlier connection closed', () => second.client.closed)
    await expectResent(third.client, ids)
    await finish(third.client, node, lease, ids, 'a')

    // Retained and live QoS 1 messages of another cloud app (numbered outside the follower range,
    // so they can never collide with a session message in flight).
    const other = await RawClient.connect(node.mqttPort, 'other-app', true)
    clients.push(other.client)
    other.client.send({ cmd: 'publish', topic: 'chat/r', payload: 'kept', qos: 1, retain: true, messageId: 8 })
    await other.client.next('puback')
    await third.client.subscribe([{ topic: 'chat/#', qos: 1 }], 2)
    other.client.send({ cmd: 'publish', topic: 'chat/x', payload: 'hello', qos: 1, messageId: 9 })
    await other.client.next('puback')
    const chat = (await third.client.take(2)).map(pub)
    assert.deepEqual(chat.map((p) => p.payload), ['kept', 'hello'])
    for (const p of chat) assert.ok(p.messageId >= OTHER_MIN_PACKET_ID, `id ${p.messageId} above the follower range`)
    assert.notEqual(chat[0].messageId, chat[1].messageId)
    for (const p of chat) third.client.send({ cmd: 'puback', messageId: p.messageId })
    await third.client.sync()
  } finally {
    for (const c of clients) if (!c.closed) await c.drop()
    await node.close()
    await dir.remove()
  }
})

let nats: NatsCluster | undefined
const dirs: Array<{ remove: () => Promise<void> }> = []
let nodeA: CloudNode | undefined
let nodeB: CloudNode | undefined

before(async () => {
  if (!clusterAvailable({ skip: () => {} })) return
  nats = await startNatsCluster({ size: 1 })
  const store = ['--store', nats.urls.join(','), '--log-level', 'warn']
  const da = await tempDir('cloud-ids-a'); dirs.push(da)
  const db = await tempDir('cloud-ids-b'); dirs.push(db)
  nodeA = await startTestCloud(da.path, [...store, '--node-id', 'node-a'])
  nodeB = await startTestCloud(db.path, [...store, '--node-id', 'node-b'])
})

after(async () => {
  await nodeA?.close()
  await nodeB?.close()
  await nats?.stop()
  for (const d of dirs) await d.remove()
})

test('two nodes (NATS store): the session moves A -> B after a dropped connection, then back to A by takeover; the same packet ids each time', { timeout: 60_000 }, async (t) => {
  if (nats === undefined) { t.skip('nats-server not installed'); return }
  const clients: RawClient[] = []
  try {
    const lease = await leaseOf(nodeA!)
    const atA = await RawClient.connect(nodeA!.mqttPort, 'raw-move')
    clients.push(atA.client)
    const ids = await firstLife(atA.client, nodeA!, lease, 'b')
    await atA.client.drop() // no DISCONNECT: node A sees the socket fail

    const atB = await RawClient.connect(nodeB!.mqttPort, 'raw-move')
    clients.push(atB.client)
    assert.equal(atB.sessionPresent, true)
    await expectResent(atB.client, ids)

    // Back to A while B's connection is open: B hands the session over and drops its client.
    const backAtA = await RawClient.connect(nodeA!.mqttPort, 'raw-move')
    clients.push(backAtA.client)
    await waitFor('B closed its connection', () => atB.client.closed)
    await expectResent(backAtA.client, ids)
    await finish(backAtA.client, nodeA!, lease, ids, 'b')
  } finally {
    for (const c of clients) if (!c.closed) await c.drop()
  }
})

test('the holding node SIGKILLed right after a PUBREL went out: at the other node its PUBREL comes with the same id, the unacked ones with theirs and DUP=1', { timeout: 60_000 }, async (t) => {
  if (nats === undefined) { t.skip('nats-server not installed'); return }
  const dir = await tempDir('cloud-ids-k'); dirs.push(dir)
  const proc: CloudProcess = await startCloudProcess(['--store', nats.urls.join(','), '--node-id', 'node-k', '--data-dir', dir.path, '--mqtt-port', '0', '--bridge-port', '0', '--http-port', '0', '--edge-token', 'edge-b=secret-b', '--log-level', 'warn'], 30_000)
  const records = await JetStreamSessionKV.open({ servers: nats.urls, bucket: 'TRIB_CSESS', prefix: 'TRIB', replicas: 1, expiryMs: 7 * 24 * 3_600_000, logger: silentLogger() })
  const clients: RawClient[] = []
  try {
    const lease = await leaseOf(nodeB!, 'edge-b') // edge-a is leased to node A by the test above
    const atK = await RawClient.connect(proc.mqttPort, 'raw-crash')
    clients.push(atK.client)
    await atK.client.subscribe([{ topic: 'up/edge-b/devices/k1/#', qos: 1 }, { topic: 'up/edge-b/devices/k2/#', qos: 2 }])
    await append(nodeB!, lease, 0, 1, 'k1', 1, 'edge-b')
    await append(nodeB!, lease, 1, 3, 'k2', 2, 'edge-b')
    const got = (await atK.client.take(3)).map(pub)
    assert.deepEqual(got.map((p) => [p.payload, p.qos]), [['m0', 1], ['m1', 2], ['m2', 2]])
    const [m0k, m1k, m2k] = got.map((p) => p.messageId)
    atK.client.send({ cmd: 'pubrec', messageId: m1k })
    assert.deepEqual(short(await atK.client.take(1)), [`pubrel:${m1k}`])
    // No wait for the batched write: the PUBREL goes out only once the record holds that state.
    assert.deepEqual((await records.get('raw-crash'))?.record.released, [m1k])
    await proc.kill()

    const atB = await RawClient.connect(nodeB!.mqttPort, 'raw-crash')
    clients.push(atB.client)
    assert.equal(atB.sessionPresent, true)
    assert.deepEqual(short(await atB.client.take(3)), [`pubrel:${m1k}`, `m0:q1:${m0k}:dup`, `m2:q2:${m2k}:dup`])
    atB.client.send({ cmd: 'pubcomp', messageId: m1k })
    atB.client.send({ cmd: 'puback', messageId: m0k })
    atB.client.send({ cmd: 'pubrec', messageId: m2k })
    assert.deepEqual(short(await atB.client.take(1)), [`pubrel:${m2k}`])
    atB.client.send({ cmd: 'pubcomp', messageId: m2k })
    await atB.client.sync()
    assert.deepEqual(atB.client.pending('publish'), [], 'm1k is not published again')
  } finally {
    for (const c of clients) if (!c.closed) await c.drop()
    await records.close()
    await proc.kill()
  }
})
