// The cloud store contract, as a function of a store harness: every CloudStore implementation
// (memory, embedded, JetStream in issue 5) runs exactly these tests.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { BridgeRecord } from '../../src/protocol/bridge-frames.js'
import type { CloudStore, Lease } from '../../cloud/store/types.js'

export interface StoreHarness {
  // Opens the store over the harness' state; calling it again after close() is a restart.
  open: () => Promise<CloudStore>
  destroy: () => Promise<void>
}

// Edge records with offsets as the edge log would give them: each record spans `len` bytes.
export function edgeRecords (from: number, count: number, opts: { len?: number, topic?: (i: number) => string, tsBase?: number } = {}): BridgeRecord[] {
  const len = opts.len ?? 50
  return Array.from({ length: count }, (_, i) => ({
    offset: from + i * len,
    nextOffset: from + (i + 1) * len,
    timestampMs: (opts.tsBase ?? 1_700_000_000_000) + i,
    qos: 1 as const,
    retain: false,
    topic: opts.topic?.(i) ?? `devices/${i % 3}/telemetry`,
    payload: Buffer.from(`m-${from + i * len}`)
  }))
}

async function lease (store: CloudStore, edgeId: string, holder = 'node-a'): Promise<Lease> {
  const out = await store.acquireLease(edgeId, holder, 30_000, Date.now())
  assert.equal(out.status, 'ok')
  return (out as { lease: Lease }).lease
}

async function readAll (store: CloudStore): Promise<Array<{ edgeId: string, edgeOffset: number, payload: string }>> {
  const out: Array<{ edgeId: string, edgeOffset: number, payload: string }> = []
  let seq = 0
  for (;;) {
    const b = await store.read(seq, { maxRecords: 100 })
    for (const r of b.records) out.push({ edgeId: r.edgeId, edgeOffset: r.edgeOffset, payload: r.payload.toString() })
    if (b.status === 'end' || b.records.length === 0) return out
    seq = b.nextSeq
  }
}

export function cloudStoreContract (name: string, makeHarness: () => Promise<StoreHarness>): void {
  const withStore = (title: string, fn: (h: StoreHarness, store: CloudStore, t: TestContext) => Promise<void>): void => {
    test(`${name}: ${title}`, async (t) => {
      const h = await makeHarness()
      const store = await h.open()
      let current = store
      try {
        await fn({ ...h, open: async () => { current = await h.open(); return current } }, store, t)
      } finally {
        await current.close().catch(() => {})
        await h.destroy()
      }
    })
  }

  withStore('append returns the committed offset and reads back in order', async (_h, store) => {
    const l = await lease(store, 'e1')
    const recs = edgeRecords(0, 10)
    const out = await store.appendBatch('e1', { fromOffset: 0, toOffset: 500, records: recs }, l)
    assert.deepEqual(out, { status: 'ok', committedOffset: 500, appended: 10 })
    assert.equal(await store.committedOffset('e1'), 500)
    assert.equal(await store.committedOffset('other'), 0)
    const all = await readAll(store)
    assert.deepEqual(all.map((r) => r.edgeOffset), recs.map((r) => r.offset))
    const b = await store.read(0, { maxRecords: 3 })
    assert.equal(b.records.length, 3)
    assert.equal(b.records[0].topic, 'devices/0/telemetry')
    assert.equal(b.records[0].timestampMs, recs[0].timestampMs)
    assert.equal(b.records[0].qos, 1)
    const end = await store.read(await store.endSeq())
    assert.equal(end.status, 'end')
  })

  withStore('a replayed batch is a no-op, a partly replayed one appends only the new part', async (_h, store) => {
    const l = await lease(store, 'e1')
    const recs = edgeRecords(0, 10)
    await store.appendBatch('e1', { fromOffset: 0, toOffset: 500, records: recs }, l)
    const again = await store.appendBatch('e1', { fromOffset: 0, toOffset: 500, records: recs }, l)
    assert.deepEqual(again, { status: 'ok', committedOffset: 500, appended: 0 })
    const overlap = edgeRecords(250, 10)
    const o = await store.appendBatch('e1', { fromOffset: 250, toOffset: 750, records: overlap }, l)
    assert.deepEqual(o, { status: 'ok', committedOffset: 750, appended: 5 })
    const all = await readAll(store)
    assert.deepEqual(all.map((r) => r.edgeOffset), edgeRecords(0, 15).map((r) => r.offset))
  })

  withStore('edges are independent; an empty batch advances past filtered records', async (_h, store) => {
    const la = await lease(store, 'a')
    const lb = await lease(store, 'b')
    await store.appendBatch('a', { fromOffset: 0, toOffset: 100, records: edgeRecords(0, 2) }, la)
    await store.appendBatch('b', { fromOffset: 0, toOffset: 100, records: edgeRecords(0, 2) }, lb)
    const empty = await store.appendBatch('a', { fromOffset: 100, toOffset: 900, records: [] }, la)
    assert.deepEqual(empty, { status: 'ok', committedOffset: 900, appended: 0 })
    assert.equal(await store.committedOffset('b'), 100)
    assert.equal((await readAll(store)).length, 4)
    const s = await store.stats()
    assert.equal(s.records, 4)
    assert.equal(s.edges, 2)
  })

  // An edge that replicates ahead of its fsync and loses power restarts past an offset gap
  // (src/commitlog/README.md "Replicate-ahead window"): the store holds records the edge lost,
  // gets an empty batch across the gap, then records with offsets past it. Edge offsets are
  // increasing, not contiguous. Without the gap the edge would reuse lost offsets: skipped.
  withStore('an offset gap after an edge power loss: an empty batch crosses it, records after it are stored', async (_h, store) => {
    const l = await lease(store, 'e1')
    await store.appendBatch('e1', { fromOffset: 0, toOffset: 1000, records: edgeRecords(0, 20) }, l)
    // The edge recovered only [0, 600) and reuses nothing: it crosses the gap [1000, 9000).
    const cross = await store.appendBatch('e1', { fromOffset: 1000, toOffset: 9000, records: [] }, l)
    assert.deepEqual(cross, { status: 'ok', committedOffset: 9000, appended: 0 })
    const after = await store.appendBatch('e1', { fromOffset: 9000, toOffset: 9100, records: edgeRecords(9000, 2) }, l)
    assert.deepEqual(after, { status: 'ok', committedOffset: 9100, appended: 2 })
    // What reusing offsets would do: records below the committed offset are replays, dropped.
    const reused = await store.appendBatch('e1', { fromOffset: 600, toOffset: 700, records: edgeRecords(600, 2) }, l)
    assert.equal(reused.status === 'ok' && reused.appended, 0)
    const all = await readAll(store)
    assert.deepEqual(all.map((r) => r.edgeOffset), [...edgeRecords(0, 20), ...edgeRecords(9000, 2)].map((r) => r.offset))
  })

  withStore('committed offsets and records survive a restart; replay after restart is a no-op', async (h, store) => {
    const l = await lease(store, 'e1')
    await store.appendBatch('e1', { fromOffset: 0, toOffset: 1000, records: edgeRecords(0, 20) }, l)
    await store.close()
    const reopened = await h.open()
    assert.equal(await reopened.committedOffset('e1'), 1000)
    const l2 = await lease(reopened, 'e1')
    const again = await reopened.appendBatch('e1', { fromOffset: 500, toOffset: 1000, records: edgeRecords(500, 10) }, l2)
    assert.equal(again.status === 'ok' && again.appended, 0)
    const more = await reopened.appendBatch('e1', { fromOffset: 1000, toOffset: 1100, records: edgeRecords(1000, 2) }, l2)
    assert.equal(more.status === 'ok' && more.appended, 2)
    const all = await readAll(reopened)
    assert.deepEqual(all.map((r) => r.edgeOffset), edgeRecords(0, 22).map((r) => r.offset))
  })

  withStore('fencing: an append with a superseded lease is refused', async (_h, store) => {
    const first = await lease(store, 'e1', 'node-a')
    const held = await store.acquireLease('e1', 'node-b', 30_000, Date.now())
    assert.equal(held.status, 'held')
    // node-a reconnects the edge: a new epoch; the old connection's lease is fenced.
    const second = await lease(store, 'e1', 'node-a')
    assert.ok(second.epoch > first.epoch)
    const fenced = await store.appendBatch('e1', { fromOffset: 0, toOffset: 50, records: edgeRecords(0, 1) }, first)
    assert.equal(fenced.status, 'fenced')
    assert.equal(await store.committedOffset('e1'), 0)
    const ok = await store.appendBatch('e1', { fromOffset: 0, toOffset: 50, records: edgeRecords(0, 1) }, second)
    assert.equal(ok.status, 'ok')
    // An expired lease can be taken over by another holder.
    const short = await store.renewLease(second, 1, Date.now())
    assert.equal(short.status, 'ok')
    const taken = await store.acquireLease('e1', 'node-b', 30_000, Date.now() + 10)
    assert.equal(taken.status, 'ok')
    const renewOld = await store.renewLease(second, 30_000, Date.now())
    assert.equal(renewOld.status, 'held')
    const fencedAgain = await store.appendBatch('e1', { fromOffset: 50, toOffset: 100, records: edgeRecords(50, 1) }, second)
    assert.deepEqual(fencedAgain, { status: 'fenced', holder: 'node-b' })
  })

  withStore('readTopic and seqForTime replay one topic from an offset or a time', async (_h, store) => {
    const l = await lease(store, 'e1')
    const recs = edgeRecords(0, 30, { topic: (i) => `t/${i % 2}`, tsBase: 1_000_000 })
    await store.appendBatch('e1', { fromOffset: 0, toOffset: 1500, records: recs }, l)
    const all: number[] = []
    let seq = 0
    for (;;) {
      const b = await store.readTopic('e1', 't/1', seq, { maxRecords: 4 })
      all.push(...b.records.map((r) => r.edgeOffset))
      if (b.records.length === 0) break
      seq = b.nextSeq
    }
    assert.deepEqual(all, recs.filter((_, i) => i % 2 === 1).map((r) => r.offset))
    const fromTime = await store.seqForTime(1_000_020)
    const b = await store.readTopic('e1', 't/0', fromTime, { maxRecords: 100 })
    assert.deepEqual(b.records.map((r) => r.timestampMs), [1_000_020, 1_000_022, 1_000_024, 1_000_026, 1_000_028])
    assert.equal(await store.seqForTime(9_000_000), await store.endSeq())
    const other = await store.readTopic('e2', 't/0', 0, { maxRecords: 100 })
    assert.equal(other.records.length, 0)
  })

  withStore('waitForData resolves when a record arrives', async (_h, store) => {
    const l = await lease(store, 'e1')
    const end = await store.endSeq()
    let woke = false
    const waiting = store.waitForData(end).then(() => { woke = true })
    await new Promise((resolve) => setTimeout(resolve, 20))
    assert.equal(woke, false)
    await store.appendBatch('e1', { fromOffset: 0, toOffset: 50, records: edgeRecords(0, 1) }, l)
    await waiting
    assert.equal(woke, true)
  })

  withStore('named cursors persist across a restart', async (h, store) => {
    assert.equal(await store.getCursor('mqtt'), undefined)
    await store.setCursor('mqtt', 1234)
    await store.close()
    const reopened = await h.open()
    assert.equal(await reopened.getCursor('mqtt'), 1234)
  })

  withStore('concurrent downlink enqueues get distinct increasing seqs', async (_h, store) => {
    const ds = await Promise.all(Array.from({ length: 20 }, async (_, i) => await store.enqueueDownlink('e9', { topic: 't', payload: Buffer.from(String(i)), qos: 1, retain: false, expiresAtMs: 0 })))
    assert.equal(new Set(ds.map((d) => d.seq)).size, 20)
    const p = await store.pendingDownlinks('e9', 0, Date.now(), 100)
    assert.equal(p.downlinks.length, 20)
  })

  withStore('downlinks: queue per edge, in order, acked, expired ones dropped and counted, durable', async (h, store) => {
    const now = Date.now()
    const d1 = await store.enqueueDownlink('e1', { topic: 'devices/1/commands/reboot', payload: Buffer.from('a'), qos: 1, retain: false, expiresAtMs: 0 })
    const d2 = await store.enqueueDownlink('e1', { topic: 'devices/2/commands/reboot', payload: Buffer.from('b'), qos: 2, retain: false, expiresAtMs: now + 60_000 })
    await store.enqueueDownlink('e1', { topic: 'devices/3/commands/x', payload: Buffer.from('c'), qos: 0, retain: false, expiresAtMs: now - 1 })
    await store.enqueueDownlink('e2', { topic: 'x', payload: Buffer.from('z'), qos: 1, retain: false, expiresAtMs: 0 })
    assert.ok(d2.seq > d1.seq)
    const p = await store.pendingDownlinks('e1', 0, now, 10)
    assert.deepEqual(p.downlinks.map((d) => d.payload.toString()), ['a', 'b'])
    assert.equal(p.downlinks[1].qos, 2)
    assert.equal(p.expired, 1)
    const after = await store.pendingDownlinks('e1', d1.seq, now, 10)
    assert.deepEqual(after.downlinks.map((d) => d.seq), [d2.seq])
    await store.close()
    const reopened = await h.open()
    const again = await reopened.pendingDownlinks('e1', 0, now, 10)
    assert.deepEqual(again.downlinks.map((d) => d.payload.toString()), ['a', 'b'])
    await reopened.ackDownlinks('e1', d1.seq)
    assert.deepEqual((await reopened.pendingDownlinks('e1', 0, now, 10)).downlinks.map((d) => d.seq), [d2.seq])
    const later = await reopened.pendingDownlinks('e1', 0, now + 120_000, 10)
    assert.deepEqual(later, { downlinks: [], expired: 1 })
    assert.equal((await reopened.pendingDownlinks('e2', 0, now, 10)).downlinks.length, 1)
    const d5 = await reopened.enqueueDownlink('e1', { topic: 't', payload: Buffer.from('d'), qos: 1, retain: false, expiresAtMs: 0 })
    assert.ok(d5.seq > d2.seq, 'downlink seqs keep increasing across restarts')
  })
}
