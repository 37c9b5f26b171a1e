// Packet ids of cloud persistent sessions [MQTT-4.4.0-1]: a follower numbers its QoS>0 deliveries
// itself, from the record's id at the cursor; a follower that resumes from the record (another
// connection, another node) gives every message the id it had, re-sends unacked PUBLISHes with
// DUP=1, does not re-send QoS 2 messages in PUBREC-received state nor ones acked out of order,
// and a subscription removed while its messages are unacknowledged still numbers them alike.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { silentLogger } from '../../src/log/index.js'
import { CloudTopicTemplate } from '../../cloud/dispatcher.js'
import { SessionFollower, type ResumeState } from '../../cloud/sessions/follower.js'
import { StoreTail } from '../../cloud/sessions/tail.js'
import { MetaSessionKV } from '../../cloud/sessions/kv.js'
import { SessionManager } from '../../cloud/sessions/manager.js'
import { MemoryMetaStore } from '../../src/meta/memory.js'
import { decodeSession, encodeSession, FOLLOWER_MAX_PACKET_ID, type SessionRecord } from '../../cloud/sessions/record.js'
import { MemoryCloudStore } from '../../cloud/store/memory.js'
import { waitFor } from '../helpers/net.js'
import { FakeClient, twoManagers, type FakeSent } from './cloud-sessions-fakes.js'

const template = new CloudTopicTemplate('up/{edge}/{topic}')
const M = FOLLOWER_MAX_PACKET_ID

async function append (store: MemoryCloudStore, from: number, n: number, qos: 1 | 2): Promise<void> {
  const lease = await store.acquireLease('e1', 'test', 60_000, Date.now())
  if (lease.status !== 'ok') throw new Error('lease')
  const records = Array.from({ length: n }, (_, i) => ({ offset: from + i, nextOffset: from + i + 1, timestampMs: 0, qos, retain: false, topic: 'a/t', payload: Buffer.from(`m${from + i}`) }))
  const out = await store.appendBatch('e1', { fromOffset: from, toOffset: from + n, records }, lease.lease)
  assert.equal(out.status, 'ok')
}


// Client "app" connects at m (CONNECT, registered, SUBSCRIBE up/e1/#, CONNACK).
async function connectAt (m: SessionManager, qos: 1 | 2): Promise<FakeClient> {
  await m.open('app')
  const c = new FakeClient('app')
  m.bind(c)
  await m.addSubscriptions('app', [{ topic: 'up/e1/#', qos }])
  m.ready(c)
  return c
}

const settle = async (): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, 30)) }
const view = (s: FakeSent[]): Array<[string, number, boolean]> => s.map((x) => [x.payload, x.messageId, x.dup])

test('follower resume: same ids (wrapping in the follower range), DUP=1 on unacked ones, PUBREC-received and out-of-order acked ones not published again', async () => {
  const store = new MemoryCloudStore()
  await append(store, 0, 8, 2)
  const tail = new StoreTail(store, silentLogger())
  const subs = [{ topic: 'up/e1/#', qos: 2 as const, since: 0 }]
  const a = new FakeClient('app')
  const fa = new SessionFollower(store, tail, template, a, subs, { cursor: 0, packetId: M - 2, sentUpTo: 0, released: [], acked: [] }, 100, () => {}, silentLogger())
  fa.start()
  await waitFor('m0..m7 at A', () => a.sent.length >= 8)
  const ids = [M - 2, M - 1, M, 1, 2, 3, 4, 5]
  assert.deepEqual(view(a.sent), ids.map((id, i) => [`m${i}`, id, false]), 'ids in store order, wrapping at the top of the follower range')
  assert.equal(fa.pubrec(ids[0]), true) // m0: PUBREC, PUBCOMP owed
  assert.equal(fa.pubrec(ids[1]), true); assert.equal(fa.ack(ids[1]), true) // m1: complete, out of order
  assert.equal(fa.pubrec(ids[3]), true) // m3: PUBREC
  assert.equal(fa.pubrec(ids[3]), false, 'a second PUBREC changes nothing')
  assert.equal(fa.pubrec(0xC001), false, 'not one of ours')
  const state: ResumeState = fa.resumeState()
  assert.deepEqual(state, { cursor: 0, packetId: M - 2, sentUpTo: 8, released: [ids[0], ids[3]], acked: [ids[1]] })
  fa.stop()

  // B resumes (another connection or node): m2, m4..m7 again with their ids and DUP=1.
  const b = new FakeClient('app')
  const fb = new SessionFollower(store, tail, template, b, subs, state, 100, () => {}, silentLogger())
  fb.start()
  await waitFor('the unacked ones at B', () => b.sent.length >= 5)
  await settle()
  assert.deepEqual(view(b.sent), [['m2', M, true], ['m4', 2, true], ['m5', 3, true], ['m6', 4, true], ['m7', 5, true]])
  assert.equal(fb.ack(ids[0]), true, 'PUBCOMP of the PUBREL re-sent at the reconnect')
  assert.equal(fb.cursor, 2, 'm0, m1 done; m2 owed')
  assert.deepEqual(fb.resumeState(), { cursor: 2, packetId: M, sentUpTo: 8, released: [ids[3]], acked: [] })
  await append(store, 8, 1, 2)
  await waitFor('live m8', () => b.sent.length >= 6)
  assert.deepEqual(view(b.sent.slice(5)), [['m8', 6, false]], 'new messages: next id, no DUP')
  fb.stop()

  // C resumes with a window of 1: the PUBCOMP of m3's PUBREL comes before C reads m3 again.
  const c = new FakeClient('app')
  const fc = new SessionFollower(store, tail, template, c, subs, state, 1, () => {}, silentLogger())
  fc.start()
  await settle()
  assert.deepEqual(c.sent, [], 'm0 (PUBREL owed) fills the window of 1')
  assert.equal(fc.ack(ids[3]), true, 'PUBCOMP for m3, not reached yet')
  assert.equal(fc.ack(ids[0]), true)
  await waitFor('m2 at C', () => c.sent.length >= 1)
  assert.deepEqual(view(c.sent), [['m2', M, true]])
  assert.equal(fc.ack(M), true)
  await waitFor('m4 at C', () => c.sent.length >= 2)
  assert.deepEqual(view(c.sent), [['m2', M, true], ['m4', 2, true]], 'm3 completed: skipped')
  assert.equal(fc.cursor, 4)
  fc.stop()
  tail.close()
  await store.close()
})

test('session record: packet id state and retired subscriptions round-trip; a first-version record reads with defaults', () => {
  const r: SessionRecord = { subs: [{ topic: 'a/#', qos: 1, since: 2, until: 9 }, { topic: 'b', qos: 2, since: 3 }], cursor: 4, packetId: 77, sentUpTo: 8, released: [78, 80], acked: [79], holder: 'n#1', epoch: 3, heldUntilMs: 5, touchedMs: 6 }
  assert.deepEqual(decodeSession(encodeSession(r)), r)
  const v1 = Buffer.from(JSON.stringify({ v: 1, s: [['a/#', 1, 2]], c: 4, h: '', e: 1, u: 0, t: 6 }))
  assert.deepEqual(decodeSession(v1), { subs: [{ topic: 'a/#', qos: 1, since: 2 }], cursor: 4, packetId: 1, sentUpTo: 4, released: [], acked: [], holder: '', epoch: 1, heldUntilMs: 0, touchedMs: 6 })
})

test('managers: an UNSUBSCRIBE with messages unacknowledged, then the session moves: the owed messages keep their ids (DUP=1), nothing new matches', async () => {
  const store = new MemoryCloudStore()
  const { kv, a, b, close } = twoManagers(store, template)
  try {
    await a.open('app')
    const atA = new FakeClient('app')
    a.bind(atA)
    await a.addSubscriptions('app', [{ topic: 'up/e1/#', qos: 1 }, { topic: 'up/e1/a/t', qos: 1 }])
    a.ready(atA)
    await append(store, 0, 4, 1)
    await waitFor('m0..m3 at A', () => atA.sent.length >= 4)
    assert.deepEqual(view(atA.sent), [['m0', 1, false], ['m1', 2, false], ['m2', 3, false], ['m3', 4, false]])
    assert.equal(a.ack('app', 1), true)
    assert.equal(a.ack('app', 3), true) // out of order
    // Resubscribing with the same QoS changes nothing; then both filters go.
    await a.addSubscriptions('app', [{ topic: 'up/e1/#', qos: 1 }])
    await a.removeSubscriptions('app', ['up/e1/#', 'up/e1/a/t'])
    await append(store, 4, 2, 1) // after the UNSUBSCRIBE: not for this session
    await settle()
    assert.equal(atA.sent.length, 4)
    const stored = (await kv.get('app'))!.record
    assert.deepEqual(stored.subs.map((s) => [s.topic, s.until]), [['up/e1/#', 4], ['up/e1/a/t', 4]], 'retired at the read position, kept for the owed messages')

    assert.deepEqual(await b.open('app'), [], 'no active subscription')
    assert.equal(atA.closed, true)
    const atB = new FakeClient('app')
    b.bind(atB)
    assert.deepEqual(b.pendingReleases('app'), [])
    b.ready(atB)
    await waitFor('m1, m3 again at B', () => atB.sent.length >= 2)
    await settle()
    assert.deepEqual(view(atB.sent), [['m1', 2, true], ['m3', 4, true]], 'm2 was acked: not again; m4, m5 not subscribed')
    assert.equal(b.ack('app', 2), true)
    assert.equal(b.ack('app', 4), true)
    await waitFor('cursor at the end', () => b.info('app')?.cursor === 6)
    await b.close()
    const after = (await kv.get('app'))!.record
    assert.equal(after.cursor, 6)
    assert.deepEqual(after.subs, [], 'retired subscriptions leave the record once the cursor passes them')
  } finally {
    await close()
  }
})

test('managers: a subscription replaced at another QoS with messages in flight: after a move those keep their QoS and ids, later ones get the new QoS; PUBRELs owed come from the record', async () => {
  const store = new MemoryCloudStore()
  const { kv, a, b, close } = twoManagers(store, template)
  try {
    const atA = await connectAt(a, 2)
    await append(store, 0, 2, 2)
    await waitFor('m0, m1 at A', () => atA.sent.length >= 2)
    assert.equal(await a.pubrec('app', 1), true)
    assert.deepEqual((await kv.get('app'))?.record.released, [1], 'written before the PUBREL may go out')
    await a.addSubscriptions('app', [{ topic: 'up/e1/#', qos: 1 }]) // [MQTT-3.8.4-3] replaces it
    await append(store, 2, 1, 2)
    await waitFor('m2 at A', () => atA.sent.length >= 3)
    assert.deepEqual(atA.sent.map((s) => [s.payload, s.qos, s.messageId]), [['m0', 2, 1], ['m1', 2, 2], ['m2', 1, 3]])

    assert.deepEqual((await b.open('app')).map((s) => [s.topic, s.qos]), [['up/e1/#', 1]], 'only the active subscription')
    assert.deepEqual(b.pendingReleases('app'), [1], 'm0: PUBREL owed')
    const atB = new FakeClient('app')
    b.bind(atB)
    b.ready(atB)
    assert.deepEqual(b.pendingReleases('app'), [], 'asked once, before the follower starts')
    await waitFor('m1, m2 at B', () => atB.sent.length >= 2)
    await settle()
    assert.deepEqual(atB.sent.map((s) => [s.payload, s.qos, s.messageId, s.dup]), [['m1', 2, 2, true], ['m2', 1, 3, true]])
  } finally {
    await close()
  }
})

test('PUBRECs: written before the PUBREL may go out, PUBRECs that arrive together share one write; a write that fails withholds the PUBREL (throws)', async () => {
  const store = new MemoryCloudStore()
  const real = new MetaSessionKV(new MemoryMetaStore(), silentLogger())
  let puts = 0
  let down = false
  const kv = {
    get: async (id: string) => await real.get(id),
    put: async (id: string, r: SessionRecord, rev: number) => { puts++; if (down) throw new Error('store unreachable'); return await real.put(id, r, rev) },
    delete: async (id: string) => { await real.delete(id) },
    requestRelease: async (id: string, holder: string) => await real.requestRelease(id, holder),
    onReleaseRequest: (holder: string, handler: (clientId: string) => Promise<void>) => { real.onReleaseRequest(holder, handler) },
    close: async () => { await real.close() }
  }
  const m = new SessionManager({ kv, store, template, nodeId: 'n', leaseTtlMs: 15_000, expiryMs: 3_600_000, windowMessages: 10, logger: silentLogger(), now: Date.now })
  m.start()
  try {
    const c = await connectAt(m, 2)
    await append(store, 0, 4, 2)
    await waitFor('m0..m3', () => c.sent.length >= 4)
    const before = puts
    assert.deepEqual(await Promise.all([m.pubrec('app', 1), m.pubrec('app', 2), m.pubrec('app', 3), m.pubrec('app', 0xC000)]), [true, true, true, false])
    assert.ok(puts - before <= 2, `one write for the three (a timer flush may add one): ${puts - before}`)
    assert.deepEqual((await real.get('app'))?.record.released, [1, 2, 3])
    down = true
    await assert.rejects(m.pubrec('app', 4), /PUBREL withheld/)
  } finally {
    down = false
    await m.close()
    await store.close()
  }
})
