// In-memory cloud store: for tests and as the reference behaviour of the contract. State lives in
// a `MemoryCloudState` so a test can "reopen" a store over the same state (a restart).
import type {
  AppendBatchInput, AppendOutcome, CloudStore, Downlink, DownlinkInput, Lease, LeaseOutcome,
  PendingDownlinks, StoreReadBatch, StoreReadLimits, StoreStats, StoredRecord
} from './types.js'
import { LeaseTable } from './leases.js'

export interface MemoryCloudState {
  records: StoredRecord[]
  committed: Map<string, number>
  downlinks: Map<string, Downlink[]>
  downlinkSeq: Map<string, number>
  leases: LeaseTable
  cursors: Map<string, number>
}

export function newMemoryCloudState (): MemoryCloudState {
  return { records: [], committed: new Map(), downlinks: new Map(), downlinkSeq: new Map(), leases: new LeaseTable(), cursors: new Map() }
}

const DEFAULT_MAX_RECORDS = 1000

export class MemoryCloudStore implements CloudStore {
  readonly kind = 'memory'
  private readonly waiters: Array<() => void> = []
  private closed = false

  constructor (private readonly state: MemoryCloudState = newMemoryCloudState()) {}

  async appendBatch (edgeId: string, batch: AppendBatchInput, lease: Lease): Promise<AppendOutcome> {
    const check = this.state.leases.check(lease)
    if (check !== undefined) return { status: 'fenced', holder: check }
    const committed = this.state.committed.get(edgeId) ?? 0
    let appended = 0
    for (const r of batch.records) {
      if (r.offset < committed) continue // already stored: the replayed part of a batch
      const seq = this.state.records.length
      this.state.records.push({ seq, nextSeq: seq + 1, edgeId, edgeOffset: r.offset, timestampMs: r.timestampMs, topic: r.topic, qos: r.qos, retain: r.retain, payload: Buffer.from(r.payload) })
      appended++
    }
    const next = Math.max(committed, batch.toOffset)
    this.state.committed.set(edgeId, next)
    if (appended > 0) this.wake()
    return { status: 'ok', committedOffset: next, appended }
  }

  async committedOffset (edgeId: string): Promise<number> {
    return this.state.committed.get(edgeId) ?? 0
  }

  async read (fromSeq: number, limits?: StoreReadLimits): Promise<StoreReadBatch> {
    return this.collect(fromSeq, limits, () => true)
  }

  async readTopic (edgeId: string, topic: string, fromSeq: number, limits?: StoreReadLimits): Promise<StoreReadBatch> {
    return this.collect(fromSeq, limits, (r) => r.edgeId === edgeId && r.topic === topic)
  }

  private collect (fromSeq: number, limits: StoreReadLimits | undefined, keep: (r: StoredRecord) => boolean): StoreReadBatch {
    const all = this.state.records
    const maxRecords = limits?.maxRecords ?? DEFAULT_MAX_RECORDS
    const maxBytes = limits?.maxBytes ?? Infinity
    const records: StoredRecord[] = []
    let bytes = 0
    let seq = Math.max(0, fromSeq)
    for (; seq < all.length && records.length < maxRecords; seq++) {
      const r = all[seq]
      if (!keep(r)) continue
      if (records.length > 0 && bytes + r.payload.length > maxBytes) break
      bytes += r.payload.length
      records.push(r)
    }
    return { status: records.length === 0 && seq >= all.length ? 'end' : 'ok', records, nextSeq: seq }
  }

  async waitForData (seq: number): Promise<void> {
    if (this.closed || seq < this.state.records.length) return
    await new Promise<void>((resolve) => this.waiters.push(resolve))
  }

  private wake (): void {
    const ws = this.waiters.splice(0)
    for (const w of ws) w()
  }

  async seqForTime (timeMs: number): Promise<number> {
    const i = this.state.records.findIndex((r) => r.timestampMs >= timeMs)
    return i === -1 ? this.state.records.length : i
  }

  async endSeq (): Promise<number> {
    return this.state.records.length
  }

  async getCursor (name: string): Promise<number | undefined> {
    return this.state.cursors.get(name)
  }

  async setCursor (name: string, seq: number): Promise<void> {
    this.state.cursors.set(name, seq)
  }

  async enqueueDownlink (edgeId: string, input: DownlinkInput): Promise<Downlink> {
    const seq = (this.state.downlinkSeq.get(edgeId) ?? 0) + 1
    this.state.downlinkSeq.set(edgeId, seq)
    const d: Downlink = { ...input, payload: Buffer.from(input.payload), edgeId, seq }
    const q = this.state.downlinks.get(edgeId) ?? []
    q.push(d)
    this.state.downlinks.set(edgeId, q)
    return d
  }

  async pendingDownlinks (edgeId: string, afterSeq: number, nowMs: number, max: number): Promise<PendingDownlinks> {
    const q = this.state.downlinks.get(edgeId) ?? []
    const live = q.filter((d) => d.expiresAtMs === 0 || d.expiresAtMs > nowMs)
    const expired = q.length - live.length
    this.state.downlinks.set(edgeId, live)
    return { downlinks: live.filter((d) => d.seq > afterSeq).slice(0, max), expired }
  }

  async ackDownlinks (edgeId: string, upToSeq: number): Promise<void> {
    const q = this.state.downlinks.get(edgeId)
    if (q !== undefined) this.state.downlinks.set(edgeId, q.filter((d) => d.seq > upToSeq))
  }

  async acquireLease (edgeId: string, holder: string, ttlMs: number, nowMs: number): Promise<LeaseOutcome> {
    return this.state.leases.acquire(edgeId, holder, ttlMs, nowMs)
  }

  async renewLease (lease: Lease, ttlMs: number, nowMs: number): Promise<LeaseOutcome> {
    return this.state.leases.renew(lease, ttlMs, nowMs)
  }

  async releaseLease (lease: Lease): Promise<void> {
    this.state.leases.release(lease)
  }

  async stats (): Promise<StoreStats> {
    let bytes = 0
    for (const r of this.state.records) bytes += r.payload.length
    let pending = 0
    for (const q of this.state.downlinks.values()) pending += q.length
    return { records: this.state.records.length, bytes, edges: this.state.committed.size, pendingDownlinks: pending }
  }

  async close (): Promise<void> {
    this.closed = true
    this.wake()
  }
}
