// Cloud persistent sessions in-process (cloud/sessions/): the record store's compare-and-set and
// expiry sweep, the follower's cursor (never ahead of acks, window-bounded, backlog then live),
// and the hand-over between two session managers (two "nodes" over one record store).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { silentLogger } from '../../src/log/index.js'
import { MemoryMetaStore } from '../../src/meta/memory.js'
import { CloudTopicTemplate } from '../../cloud/dispatcher.js'
import { MetaSessionKV } from '../../cloud/sessions/kv.js'
import { SessionFollower } from '../../cloud/sessions/follower.js'
import { StoreTail } from '../../cloud/sessions/tail.js'
import { SessionManager } from '../../cloud/sessions/manager.js'
import type { SessionRecord } from '../../cloud/sessions/record.js'
import { MemoryCloudStore } from '../../cloud/store/memory.js'
import { waitFor } from '../helpers/net.js'
import { FakeClient, twoManagers } from './cloud-sessions-fakes.js'

const template = new CloudTopicTemplate('up/{edge}/{topic}')

async function storeWith (n: number, from = 0, store = new MemoryCloudStore()): Promise<MemoryCloudStore> {
  const lease = await store.acquireLease('e1', 'test', 60_000, Date.now())
  assert.equal(lease.status, 'ok')
  if (lease.status !== 'ok') throw new Error('lease')
  const records = Array.from({ length: n }, (_, i) => ({ offset: from + i, nextOffset: from + i + 1, timestampMs: 0, qos: 1 as const, retain: false, topic: i % 2 === 0 ? 'a/t' : 'b/t', payload: Buffer.from(`m${from + i}`) }))
  await store.appendBatch('e1', { fromOffset: from, toOffset: from + n, records }, lease.lease)
  return store
}


const rec = (over: Partial<SessionRecord> = {}): SessionRecord => ({ subs: [], cursor: 0, packetId: 1, sentUpTo: 0, released: [], acked: [], holder: '', epoch: 1, heldUntilMs: 0, touchedMs: 1000, ...over })

test('session records: compare-and-set on the revision; the sweep removes only sessions offline past the expiry', async () => {
  const kv = new MetaSessionKV(new MemoryMetaStore(), silentLogger())
  assert.deepEqual(await kv.put('c1', rec(), 0), { status: 'ok', revision: 1 })
  assert.deepEqual(await kv.put('c1', rec(), 0), { status: 'conflict' }, 'create of an existing session')
  assert.deepEqual(await kv.put('c1', rec({ cursor: 5 }), 1), { status: 'ok', revision: 2 })
  assert.deepEqual(await kv.put('c1', rec({ cursor: 9 }), 1), { status: 'conflict' }, 'a stale revision')
  assert.equal((await kv.get('c1'))?.record.cursor, 5)
  // Any client id (MQTT allows any UTF-8) round-trips through the key.
  await kv.put('ü/€ #+', rec({ touchedMs: 5000 }), 0)
  await kv.put('held', rec({ holder: 'n#1', heldUntilMs: 100_000 }), 0)
  assert.equal(await kv.sweep(10_000, 12_000), 1, 'only c1 (offline since 1000) is past 10 s')
  assert.equal(await kv.get('c1'), undefined)
  assert.ok(await kv.get('ü/€ #+') !== undefined)
  assert.equal(await kv.sweep(10_000, 200_000), 2, 'a lease that ran out counts as offline')
})

test('follower: backlog then live from one position, only matching records, QoS downgraded, cursor never ahead of the acks, window bounded', async () => {
  const store = await storeWith(10)
  const client = new FakeClient('app')
  let progress = 0
  const tail = new StoreTail(store, silentLogger())
  const f = new SessionFollower(store, tail, template, client, [{ topic: 'up/e1/a/#', qos: 1, since: 0 }, { topic: 'up/e1/b/t', qos: 0, since: 4 }], { cursor: 0, packetId: 1, sentUpTo: 0, released: [], acked: [] }, 3, () => { progress++ }, silentLogger())
  f.start()
  await waitFor('window full', () => client.sent.length >= 3)
  await new Promise((resolve) => setTimeout(resolve, 50))
  // m0 (a, qos1), m2 (a), m4 (a); m1/m3 are b/t before its `since`; m5 (b/t, qos 0) would be next
  // but the window (3 unacked) holds it back.
  assert.deepEqual(client.sent.map((s) => s.payload), ['m0', 'm2', 'm4'])
  assert.equal(f.cursor, 0, 'nothing acked: the cursor stays at the first unacked record')
  assert.equal(f.ack(client.sent[1].messageId), true) // m2 acked before m0
  assert.equal(f.cursor, 0, 'm0 still unacked')
  assert.equal(f.ack(client.sent[0].messageId), true)
  assert.equal(f.cursor, 4, 'm0..m3 done, m4 unacked')
  assert.equal(f.ack(999), false, 'not one of ours')
  await waitFor('the rest of the backlog', () => client.sent.length >= 6)
  assert.deepEqual(client.sent.map((s) => [s.payload, s.qos]), [['m0', 1], ['m2', 1], ['m4', 1], ['m5', 0], ['m6', 1], ['m7', 0]])
  // Live: records appended after the follower reached the end.
  for (const s of client.sent.slice(2)) if (s.qos > 0) f.ack(s.messageId)
  await waitFor('m8, m9', () => client.sent.length >= 8)
  for (const s of client.sent.slice(6)) if (s.qos > 0) f.ack(s.messageId)
  await waitFor('cursor at the end', () => f.cursor === 10)
  await storeWith(2, 10, store)
  await waitFor('live m10, m11', () => client.sent.length >= 10)
  assert.deepEqual(client.sent.slice(8).map((s) => s.payload), ['m10', 'm11'])
  assert.ok(progress > 0)
  f.stop()
  tail.close()
  await store.close()
})

test('two managers over one record store: a connect at the second asks the first to hand over (final cursor), the first drops its client', async () => {
  const store = await storeWith(6)
  const { kv, a, b, close } = twoManagers(store, template)
  try {
    assert.deepEqual(await a.open('app'), [])
    const atA = new FakeClient('app')
    a.bind(atA)
    await a.addSubscriptions('app', [{ topic: 'up/e1/#', qos: 1 }])
    a.ready(atA)
    await storeWith(4, 6, store) // m6..m9 after the SUBSCRIBE (m0..m5 are before it)
    await waitFor('m6..m9 at A', () => atA.sent.length >= 4)
    assert.deepEqual(atA.sent.map((s) => s.payload), ['m6', 'm7', 'm8', 'm9'])
    assert.equal(a.ack('app', atA.sent[0].messageId), true)
    assert.equal(a.ack('app', atA.sent[1].messageId), true)
    assert.equal(a.info('app')?.cursor, 8)
    const before = (await kv.get('app'))!.record
    assert.equal(before.holder, a.holder)
    assert.equal(before.epoch, 1)

    const subs = await b.open('app')
    assert.deepEqual(subs.map((s) => s.topic), ['up/e1/#'])
    assert.equal(atA.closed, true, 'node A disconnected its client')
    assert.equal(a.info('app'), undefined)
    const after = (await kv.get('app'))!.record
    assert.equal(after.holder, b.holder)
    assert.equal(after.epoch, 2)
    assert.equal(after.cursor, 8, 'A handed over its final cursor: B resumes at the first unacked message')
    const late = new FakeClient('app')
    a.bind(late)
    assert.equal(late.closed, true, 'a connection registered at A after the session left is closed')
    const atB = new FakeClient('app')
    b.bind(atB)
    b.ready(atB)
    await waitFor('m8, m9 at B', () => atB.sent.length >= 2)
    assert.deepEqual(atB.sent.map((s) => s.payload), ['m8', 'm9'])
  } finally {
    await close()
  }
})

test('store tail: one wait on the store wakes every follower waiting at the end, not those past new data', async () => {
  const store = await storeWith(2)
  let storeWaits = 0
  const counting = Object.create(store) as MemoryCloudStore
  counting.waitForData = async (seq: number) => { storeWaits++; await store.waitForData(seq) }
  const tail = new StoreTail(counting, silentLogger())
  const woke: number[] = []
  for (let i = 0; i < 50; i++) void tail.wait(2).then(() => { woke.push(i) })
  let farWoke = false
  void tail.wait(4).then(() => { farWoke = true })
  await new Promise((resolve) => setTimeout(resolve, 20))
  assert.equal(woke.length, 0)
  await storeWith(1, 2, store) // end 3: data at 2, not at 4
  await waitFor('the 50 waiters at 2', () => woke.length === 50)
  await new Promise((resolve) => setTimeout(resolve, 20))
  assert.equal(farWoke, false)
  assert.ok(storeWaits <= 3, `one store wait per round, not per waiter (${storeWaits})`)
  tail.close()
  await waitFor('close wakes the rest', () => farWoke)
  await store.close()
})

test('a clean CONNECT while the record store is unreachable succeeds; the old session is removed once the store is back', async () => {
  const store = await storeWith(1)
  const real = new MetaSessionKV(new MemoryMetaStore(), silentLogger())
  let down = false
  const check = (): void => { if (down) throw new Error('store unreachable') }
  const flaky = {
    get: async (id: string) => { check(); return await real.get(id) },
    put: async (id: string, r: SessionRecord, rev: number) => { check(); return await real.put(id, r, rev) },
    delete: async (id: string) => { check(); await real.delete(id) },
    requestRelease: async (id: string, holder: string) => await real.requestRelease(id, holder),
    onReleaseRequest: (holder: string, handler: (clientId: string) => Promise<void>) => { real.onReleaseRequest(holder, handler) },
    close: async () => { await real.close() }
  }
  const m = new SessionManager({ kv: flaky, store, template, nodeId: 'n', leaseTtlMs: 15_000, expiryMs: 3_600_000, windowMessages: 10, logger: silentLogger(), now: Date.now })
  m.start()
  try {
    await m.open('app')
    await m.addSubscriptions('app', [{ topic: 'up/#', qos: 1 }])
    await real.put('other', rec({ touchedMs: Date.now() + 60_000 }), 0) // rewritten "after" its clean CONNECT
    down = true
    await m.clean('app') // does not throw
    await m.clean('other')
    assert.ok(await real.get('app') !== undefined, 'not removed yet')
    await assert.rejects(m.open('app'), /unreachable/, 'a persistent CONNECT needs the store')
    down = false
    await waitFor('removed in the background', async () => await real.get('app') === undefined, 5_000)
    assert.ok(await real.get('other') !== undefined, 'a record written after the clean CONNECT is a newer session: kept')
  } finally {
    down = false
    await m.close()
    await store.close()
  }
})
