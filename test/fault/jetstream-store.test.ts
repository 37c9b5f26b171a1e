// The JetStream store under faults, on a real 3-node nats-server cluster (R3): idempotency beyond
// the duplicate window, interrupted multi-chunk batches, two writers with stale views of an edge,
// a NATS server SIGKILLed or frozen (SIGSTOP) while edges append. Every test ends by reading the
// whole store back: each edge offset exactly once, in edge order.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { openJetStreamStore, type JetStreamCloudStore } from '../../cloud/store/jetstream.js'
import type { CloudStore, Lease } from '../../cloud/store/types.js'
import { edgeRecords } from '../contract/cloud-store-suite.js'
import { natsServerOrSkip, startNatsCluster, type NatsCluster } from '../helpers/nats-cluster.js'

const RECORD_LEN = 50 // edge offset step of edgeRecords()

async function leaseOf (store: CloudStore, edgeId: string, holder: string): Promise<Lease> {
  const out = await store.acquireLease(edgeId, holder, 600_000, Date.now())
  assert.equal(out.status, 'ok')
  return (out as { lease: Lease }).lease
}

async function offsetsByEdge (store: CloudStore): Promise<Map<string, number[]>> {
  const by = new Map<string, number[]>()
  let seq = 0
  for (;;) {
    const b = await store.read(seq, { maxRecords: 5000 })
    for (const r of b.records) {
      const list = by.get(r.edgeId) ?? []
      list.push(r.edgeOffset)
      by.set(r.edgeId, list)
      assert.equal(r.payload.toString(), `m-${r.edgeOffset}`)
    }
    if (b.status === 'end' || b.records.length === 0) return by
    seq = b.nextSeq
  }
}

function expectedOffsets (count: number): number[] {
  return Array.from({ length: count }, (_, i) => i * RECORD_LEN)
}

let prefixCounter = 0
function prefix (): string { return `F${process.pid}x${++prefixCounter}` }

describe('jetstream store faults', () => {
  let cluster: NatsCluster | undefined
  let skip = false
  before(async (t) => {
    if (natsServerOrSkip(t as unknown as { skip: (m?: string) => void }) === undefined) { skip = true; return }
    cluster = await startNatsCluster()
  })
  after(async () => { await cluster?.stop() })

  test('a batch replayed after the duplicate window, and an interrupted multi-chunk batch, store nothing twice', async (t) => {
    if (skip || cluster === undefined) { t.skip('nats-server not installed'); return }
    const p = prefix()
    // 1 s duplicate window and ~1 KiB chunks: a 60-record batch spans many stream messages.
    const opts = { servers: cluster.urls, prefix: p, replicas: 3, duplicateWindowMs: 1_000, maxChunkBytes: 1_024 }
    const a = await openJetStreamStore(opts)
    const la = await leaseOf(a, 'e1', 'node-a')
    const all = edgeRecords(0, 60)
    // The state an interruption leaves: the first 25 records stored (a chunk boundary), the rest not.
    const part = await a.appendBatch('e1', { fromOffset: 0, toOffset: 25 * RECORD_LEN, records: all.slice(0, 25) }, la)
    assert.deepEqual(part, { status: 'ok', committedOffset: 25 * RECORD_LEN, appended: 25 })
    await a.close()
    await new Promise((resolve) => setTimeout(resolve, 1_500)) // let the duplicate window pass
    const b = await openJetStreamStore(opts)
    try {
      const lb = await leaseOf(b, 'e1', 'node-a') // the edge reconnected: same node id, new epoch
      const retry = await b.appendBatch('e1', { fromOffset: 0, toOffset: 60 * RECORD_LEN, records: all }, lb)
      assert.deepEqual(retry, { status: 'ok', committedOffset: 60 * RECORD_LEN, appended: 35 })
      const replay = await b.appendBatch('e1', { fromOffset: 0, toOffset: 60 * RECORD_LEN, records: all }, lb)
      assert.deepEqual(replay, { status: 'ok', committedOffset: 60 * RECORD_LEN, appended: 0 })
      assert.deepEqual((await offsetsByEdge(b)).get('e1'), expectedOffsets(60))
      assert.equal((await b.stats()).records, 60)
    } finally { await b.close() }
  })

  test('two store instances with stale views of an edge never duplicate (the per-edge chain)', async (t) => {
    if (skip || cluster === undefined) { t.skip('nats-server not installed'); return }
    const p = prefix()
    const a = await openJetStreamStore({ servers: cluster.urls, prefix: p, replicas: 3 })
    const b = await openJetStreamStore({ servers: cluster.urls, prefix: p, replicas: 3 })
    try {
      // Fencing is the lease's job; here both hold "current" leases in turn, to test that the
      // chain alone keeps the data right even when a node acts on an outdated view.
      const la = await leaseOf(a, 'e1', 'n')
      await a.appendBatch('e1', { fromOffset: 0, toOffset: 10 * RECORD_LEN, records: edgeRecords(0, 10) }, la)
      const out = await b.appendBatch('e1', { fromOffset: 0, toOffset: 20 * RECORD_LEN, records: edgeRecords(0, 20) }, la)
      assert.deepEqual(out, { status: 'ok', committedOffset: 20 * RECORD_LEN, appended: 10 })
      // a's cached head is stale now: its next write fails the chain check, re-reads, and writes
      // only what is missing.
      const stale = await a.appendBatch('e1', { fromOffset: 10 * RECORD_LEN, toOffset: 30 * RECORD_LEN, records: edgeRecords(10 * RECORD_LEN, 20) }, la)
      assert.deepEqual(stale, { status: 'ok', committedOffset: 30 * RECORD_LEN, appended: 10 })
      assert.deepEqual((await offsetsByEdge(a)).get('e1'), expectedOffsets(30))
    } finally {
      await a.close()
      await b.close()
    }
  })

  // Edges append batches in a loop while `fault` runs; an append that fails is retried with the
  // same batch, as the bridge does. Then every record must be in the store exactly once.
  async function appendThrough (c: NatsCluster, fault: (c: NatsCluster, store: JetStreamCloudStore) => Promise<void>, note: (msg: string) => void): Promise<void> {
    const edges = ['e1', 'e2', 'e3']
    const perBatch = 25
    // Writers keep going until the fault is over, then write this many more batches each.
    const batchesAfterFault = 10
    const store = await openJetStreamStore({ servers: c.urls, prefix: prefix(), replicas: 3, requestTimeoutMs: 2_000, retryBudgetMs: 30_000 })
    try {
      let done = 0
      let failures = 0
      let faultOver = false
      const written = new Map<string, number>()
      const writers = edges.map(async (edgeId) => {
        let lease = await leaseOf(store, edgeId, 'node-a')
        let afterFault = 0
        let i = 0
        for (; afterFault < batchesAfterFault; i++) {
          if (faultOver) afterFault++
          const from = i * perBatch * RECORD_LEN
          const batch = { fromOffset: from, toOffset: from + perBatch * RECORD_LEN, records: edgeRecords(from, perBatch) }
          for (;;) {
            try {
              const out = await store.appendBatch(edgeId, batch, lease)
              assert.equal(out.status, 'ok')
              break
            } catch {
              failures++
              await new Promise((resolve) => setTimeout(resolve, 200))
              try { lease = await leaseOf(store, edgeId, 'node-a') } catch {}
            }
          }
          done++
          // Paced, so that the writes spread over the whole fault.
          await new Promise((resolve) => setTimeout(resolve, 20))
        }
        written.set(edgeId, i)
      })
      // Start the fault once writing is under way.
      while (done < 10) await new Promise((resolve) => setTimeout(resolve, 20))
      const doneAtStart = done
      await fault(c, store)
      const doneAtEnd = done
      faultOver = true
      await Promise.all(writers)
      note(`batches done: ${doneAtStart} when the fault began, ${doneAtEnd} when it ended, ${done} in all; failed appends retried: ${failures}`)
      const by = await offsetsByEdge(store)
      for (const edgeId of edges) {
        const batches = written.get(edgeId) as number
        assert.deepEqual(by.get(edgeId), expectedOffsets(batches * perBatch), `edge ${edgeId}: every record exactly once, in order`)
        assert.equal(await store.committedOffset(edgeId), batches * perBatch * RECORD_LEN)
      }
    } finally {
      await store.close()
    }
  }

  async function uplinkLeaderIndex (c: NatsCluster, store: JetStreamCloudStore): Promise<number> {
    const { connect } = await import('@nats-io/transport-node')
    const { jetstreamManager } = await import('@nats-io/jetstream')
    const nc = await connect({ servers: [...c.urls] })
    try {
      const info = await (await jetstreamManager(nc)).streams.info(store.names.uplinkStream)
      const i = c.nodes.findIndex((n) => n.name === info.cluster?.leader)
      return i >= 0 ? i : 0
    } finally { await nc.close() }
  }

  test('the uplink stream leader SIGKILLed mid-stream: no loss, no duplicate, writes continue', { timeout: 120_000 }, async (t) => {
    if (skip || cluster === undefined) { t.skip('nats-server not installed'); return }
    const c = cluster
    await appendThrough(c, async (cl, store) => {
      const victim = await uplinkLeaderIndex(cl, store)
      const pid = cl.nodes[victim]?.pid as number
      await cl.kill(victim, 'SIGKILL')
      assert.throws(() => process.kill(pid, 0), /ESRCH/)
      // Writes go on with two of three servers; the node comes back while they do.
      await new Promise((resolve) => setTimeout(resolve, 3_000))
      await cl.restart(victim)
    }, (m) => { t.diagnostic(m) })
  })

  test('a NATS server frozen (SIGSTOP) beyond the client timeouts, then resumed: no loss, no duplicate', { timeout: 120_000 }, async (t) => {
    if (skip || cluster === undefined) { t.skip('nats-server not installed'); return }
    const c = cluster
    await appendThrough(c, async (cl, store) => {
      const victim = await uplinkLeaderIndex(cl, store)
      cl.freeze(victim)
      // Longer than the request timeout (2 s) and the ping-based dead-server detection (~6 s).
      await new Promise((resolve) => setTimeout(resolve, 8_000))
      cl.thaw(victim)
    }, (m) => { t.diagnostic(m) })
  })
})
