// The embedded cloud store: one node, one commitlog for every edge (the cloud-wide sequence is the
// log offset) plus a MetaStore for committed offsets and downlink queues.
//
// Record mapping into the commitlog (see cloud/README.md):
//   topic    = `${edgeId}/${edgeTopic}`      (edge ids have no '/': EDGE_ID_PATTERN)
//   clientId = edgeId                        (one cached string per edge in the log)
//   payload  = header (24 B: edgeOffset u64 | edgeNextOffset u64 | originalTimestampMs f64) + payload
// The log's own timestamp is clamped to never go backwards; the original timestamp travels in
// the header so it is returned unchanged. The header of a whole batch is built in one buffer
// (one allocation per batch, the log copies each record into its write buffer anyway).
//
// Crash safety: an append is acked (committedOffset) only after the log reports it durable. The
// per-edge committed offsets in the MetaStore may lag the log; `meta: cloud/scanned` says up to
// which log offset they are exact, and open() rescans the log from there, so the dedupe key can
// never be behind what the log holds. Records appended but not yet durable at a crash are lost
// with the torn tail: they were never acked, the edge resends them.
import type { AppendInput, AppendResult, DurableCallback, LogRecord, ReadBatch, ReadLimits } from '../../src/commitlog/types.js'
import type { MetaStore } from '../../src/meta/types.js'
import { tributaryError } from '../../src/errors/index.js'
import type { Logger } from '../../src/log/index.js'
import type { QoSLevel } from '../../src/protocol/bridge-frames.js'
import { LeaseTable } from './leases.js'
import type {
  AppendBatchInput, AppendOutcome, CloudStore, Downlink, DownlinkInput, Lease, LeaseOutcome,
  PendingDownlinks, StoreReadBatch, StoreReadLimits, StoreStats, StoredRecord
} from './types.js'

// What this store needs of the commitlog (src/commitlog's CommitLog provides it).
export interface CloudLog {
  append (input: AppendInput, onDurable: DurableCallback): AppendResult
  read (offset: number, limits?: ReadLimits): ReadBatch | Promise<ReadBatch>
  waitForData (offset: number): Promise<void>
  offsetForTime (timestampMs: number): number | Promise<number>
  stats (): { startOffset: number, endOffset: number, durableOffset: number, bytesOnDisk: number, appendedRecords: number }
  close (): Promise<void>
}

export interface EmbeddedStoreOptions {
  log: CloudLog
  meta: MetaStore
  logger: Logger
  // How often committed offsets are checkpointed into the MetaStore (a lag only costs a rescan).
  checkpointIntervalMs?: number
}

const K_SCANNED = 'cloud/scanned'
const K_COMMITTED = 'cloud/committed/'
const K_DL = 'cloud/dl/'
const K_DLSEQ = 'cloud/dlseq/'
const K_CURSOR = 'cloud/cursor/'
const DEFAULT_MAX_RECORDS = 1000
// readTopic scans the whole log and filters: bound the records examined per call so one replay
// request cannot monopolise the event loop; the caller continues from nextSeq.
const TOPIC_SCAN_RECORDS = 20_000
const SEQ_DIGITS = 16

// Per-record header in the payload (see the top of this file).
const HEADER_BYTES = 24
const TWO_32 = 0x1_0000_0000
function writeU64 (buf: Buffer, n: number, at: number): void {
  const hi = Math.floor(n / TWO_32)
  buf.writeUInt32BE(hi, at)
  buf.writeUInt32BE(n - hi * TWO_32, at + 4)
}
function readU64 (buf: Buffer, at: number): number {
  return buf.readUInt32BE(at) * TWO_32 + buf.readUInt32BE(at + 4)
}

function pad (n: number): string { return String(n).padStart(SEQ_DIGITS, '0') }

interface ParsedRecord extends StoredRecord { edgeNextOffset: number }

interface DurableWaiter { appendedCount: number, resolve: () => void, reject: (err: Error) => void }

export class EmbeddedCloudStore implements CloudStore {
  readonly kind = 'embedded'
  private readonly log: CloudLog
  private readonly meta: MetaStore
  private readonly logger: Logger
  // Edge offset up to which records are appended (maybe not yet durable): the dedupe key.
  private readonly appendedUpTo = new Map<string, number>()
  // Edge offset up to which everything is durable: what is acked.
  private readonly committed = new Map<string, number>()
  private readonly leases = new LeaseTable()
  // Durable callbacks fire in append order: counting them tells which batches are durable
  // without a closure per record.
  private appendedCount = 0
  private durableCount = 0
  private readonly waiters: DurableWaiter[] = []
  private failed: Error | undefined
  private timer: NodeJS.Timeout | undefined
  private checkpointing: Promise<void> = Promise.resolve()
  private dirty = false
  private readonly onDurable: DurableCallback
  // Log offsets where batches start that are appended but whose commit is not yet applied: the
  // checkpoint's `scanned` must stay before them.
  private readonly inflightStarts: number[] = []

  private constructor (opts: EmbeddedStoreOptions) {
    this.log = opts.log
    this.meta = opts.meta
    this.logger = opts.logger
    this.onDurable = (err) => {
      if (err !== null) { this.fail(err); return }
      this.durableCount++
      while (this.waiters.length > 0 && this.waiters[0].appendedCount <= this.durableCount) this.waiters.shift()!.resolve()
    }
  }

  static async open (opts: EmbeddedStoreOptions): Promise<EmbeddedCloudStore> {
    const store = new EmbeddedCloudStore(opts)
    await store.recover()
    const interval = opts.checkpointIntervalMs ?? 1000
    store.timer = setInterval(() => { store.checkpoint() }, interval)
    store.timer.unref()
    return store
  }

  private async recover (): Promise<void> {
    for await (const [key, value] of this.meta.scan(K_COMMITTED)) {
      const n = Number(value.toString())
      this.committed.set(key.slice(K_COMMITTED.length), n)
    }
    const scannedBuf = await this.meta.get(K_SCANNED)
    let offset = scannedBuf === undefined ? 0 : Number(scannedBuf.toString())
    let rescanned = 0
    for (;;) {
      const b = await this.log.read(offset, { maxRecords: 10_000 })
      if (b.status === 'end') break
      for (const r of b.records) {
        const parsed = this.parse(r)
        if (parsed === undefined) continue
        const next = parsed.edgeNextOffset
        if (next > (this.committed.get(parsed.edgeId) ?? 0)) this.committed.set(parsed.edgeId, next)
        rescanned++
      }
      offset = b.nextOffset
    }
    for (const [edge, n] of this.committed) this.appendedUpTo.set(edge, n)
    this.dirty = rescanned > 0
    this.logger.info({ edges: this.committed.size, rescanned, endOffset: offset }, 'embedded cloud store recovered')
  }

  private fail (err: Error): void {
    if (this.failed !== undefined) return
    // A lost append would leave appendedUpTo ahead of the log: refuse everything until a restart
    // (which recovers the dedupe keys from what the log really holds).
    this.failed = tributaryError('TRIB_ERR_STORE_IO', `commitlog append failed: ${err.message}`, undefined, err)
    this.logger.error({ err, code: 'TRIB_ERR_STORE_IO' }, 'cloud store failed; restart the node')
    for (const w of this.waiters.splice(0)) w.reject(this.failed)
  }

  async appendBatch (edgeId: string, batch: AppendBatchInput, lease: Lease): Promise<AppendOutcome> {
    if (this.failed !== undefined) throw this.failed
    const fencedBy = this.leases.check(lease)
    if (fencedBy !== undefined) return { status: 'fenced', holder: fencedBy }
    const upTo = this.appendedUpTo.get(edgeId) ?? 0
    let appended = 0
    let startLogOffset = -1
    const records = batch.records
    const prefix = edgeId + '/'
    let size = 0
    for (let i = 0; i < records.length; i++) if (records[i].offset >= upTo) size += HEADER_BYTES + records[i].payload.length
    const block = Buffer.allocUnsafe(size)
    let at = 0
    try {
      for (let i = 0; i < records.length; i++) {
        const r = records[i]
        if (r.offset < upTo) continue // already stored: the replayed part of a batch
        const start = at
        writeU64(block, r.offset, at)
        writeU64(block, r.nextOffset, at + 8)
        block.writeDoubleBE(r.timestampMs, at + 16)
        r.payload.copy(block, at + HEADER_BYTES)
        at += HEADER_BYTES + r.payload.length
        const res = this.log.append({
          topic: prefix + r.topic,
          payload: block.subarray(start, at),
          qos: r.qos,
          retain: r.retain,
          clientId: edgeId,
          timestampMs: r.timestampMs
        }, this.onDurable)
        if (startLogOffset === -1) { startLogOffset = res.offset; this.inflightStarts.push(startLogOffset) }
        this.appendedCount++
        appended++
      }
    } catch (err) {
      this.fail(err as Error)
      throw this.failed
    }
    if (batch.toOffset > upTo) this.appendedUpTo.set(edgeId, batch.toOffset)
    // Wait until everything appended so far is durable: records of an earlier batch of this edge
    // that this one skipped may still be in flight.
    if (this.durableCount < this.appendedCount) {
      const target = this.appendedCount
      await new Promise<void>((resolve, reject) => { this.waiters.push({ appendedCount: target, resolve, reject }) })
    }
    if (startLogOffset !== -1) this.inflightStarts.splice(this.inflightStarts.indexOf(startLogOffset), 1)
    const prev = this.committed.get(edgeId) ?? 0
    const next = Math.max(prev, batch.toOffset)
    if (next !== prev) { this.committed.set(edgeId, next); this.dirty = true }
    return { status: 'ok', committedOffset: next, appended }
  }

  async committedOffset (edgeId: string): Promise<number> {
    return this.committed.get(edgeId) ?? 0
  }

  private parse (r: LogRecord): ParsedRecord | undefined {
    const slash = r.topic.length > r.clientId.length ? r.clientId.length : -1
    const p = r.payload
    // Not one of ours (cannot happen unless someone else wrote into this log): skipped.
    if (slash <= 0 || r.topic.charCodeAt(slash) !== 47 || p.length < HEADER_BYTES) return undefined
    return {
      seq: r.offset,
      nextSeq: r.nextOffset,
      edgeId: r.clientId,
      edgeOffset: readU64(p, 0),
      edgeNextOffset: readU64(p, 8),
      timestampMs: p.readDoubleBE(16),
      topic: r.topic.slice(slash + 1),
      qos: r.qos as QoSLevel,
      retain: r.retain,
      payload: p.subarray(HEADER_BYTES)
    }
  }

  private toStored (r: LogRecord): StoredRecord | undefined {
    return this.parse(r)
  }

  async read (fromSeq: number, limits?: StoreReadLimits): Promise<StoreReadBatch> {
    const b = await this.log.read(fromSeq, { maxRecords: limits?.maxRecords ?? DEFAULT_MAX_RECORDS, maxBytes: limits?.maxBytes })
    const records: StoredRecord[] = []
    for (const r of b.records) {
      const s = this.toStored(r)
      if (s !== undefined) records.push(s)
    }
    return { status: b.status, records, nextSeq: b.nextOffset }
  }

  async readTopic (edgeId: string, topic: string, fromSeq: number, limits?: StoreReadLimits): Promise<StoreReadBatch> {
    const want = edgeId + '/' + topic
    const maxRecords = limits?.maxRecords ?? DEFAULT_MAX_RECORDS
    const records: StoredRecord[] = []
    let seq = fromSeq
    let scanned = 0
    let status: StoreReadBatch['status'] = 'ok'
    while (records.length < maxRecords && scanned < TOPIC_SCAN_RECORDS) {
      const b = await this.log.read(seq, { maxRecords: Math.min(1000, TOPIC_SCAN_RECORDS - scanned) })
      if (b.status === 'end') { status = records.length === 0 ? 'end' : 'ok'; break }
      if (b.status === 'truncated') { seq = b.nextOffset; continue }
      for (const r of b.records) {
        scanned++
        seq = r.nextOffset
        if (r.topic !== want) continue
        const s = this.toStored(r)
        if (s !== undefined) records.push(s)
        if (records.length >= maxRecords) break
      }
    }
    return { status, records, nextSeq: seq }
  }

  async waitForData (seq: number): Promise<void> {
    await this.log.waitForData(seq)
  }

  async seqForTime (timeMs: number): Promise<number> {
    return await this.log.offsetForTime(timeMs)
  }

  async endSeq (): Promise<number> {
    return this.log.stats().endOffset
  }

  async getCursor (name: string): Promise<number | undefined> {
    const v = await this.meta.get(K_CURSOR + name)
    return v === undefined ? undefined : Number(v.toString())
  }

  async setCursor (name: string, seq: number): Promise<void> {
    await this.meta.put(K_CURSOR + name, Buffer.from(String(seq)))
  }

  // Downlink seqs are assigned synchronously from a cache so concurrent enqueues never share one.
  private readonly dlSeq = new Map<string, number | Promise<number>>()
  private async nextDownlinkSeq (edgeId: string): Promise<number> {
    let cur = this.dlSeq.get(edgeId)
    if (cur === undefined) {
      cur = this.meta.get(K_DLSEQ + edgeId).then((b) => b === undefined ? 0 : Number(b.toString()))
      this.dlSeq.set(edgeId, cur)
    }
    const base = await cur
    const c2 = this.dlSeq.get(edgeId)!
    const last = typeof c2 === 'number' ? c2 : base
    this.dlSeq.set(edgeId, last + 1)
    return last + 1
  }

  async enqueueDownlink (edgeId: string, input: DownlinkInput): Promise<Downlink> {
    const seq = await this.nextDownlinkSeq(edgeId)
    const d: Downlink = { ...input, edgeId, seq }
    const value = Buffer.from(JSON.stringify({ topic: d.topic, payload: d.payload.toString('base64'), qos: d.qos, retain: d.retain, expiresAtMs: d.expiresAtMs }))
    // sync: a downlink is acknowledged to the cloud app (PUBACK) once this resolves.
    await this.meta.batch([
      { type: 'put', key: K_DLSEQ + edgeId, value: Buffer.from(String(seq)) },
      { type: 'put', key: `${K_DL}${edgeId}/${pad(seq)}`, value }
    ], { sync: true })
    return d
  }

  private async scanDownlinks (edgeId: string): Promise<Downlink[]> {
    const out: Downlink[] = []
    const prefix = `${K_DL}${edgeId}/`
    for await (const [key, value] of this.meta.scan(prefix)) {
      const v = JSON.parse(value.toString()) as { topic: string, payload: string, qos: QoSLevel, retain: boolean, expiresAtMs: number }
      out.push({ edgeId, seq: Number(key.slice(prefix.length)), topic: v.topic, payload: Buffer.from(v.payload, 'base64'), qos: v.qos, retain: v.retain, expiresAtMs: v.expiresAtMs })
    }
    return out
  }

  async pendingDownlinks (edgeId: string, afterSeq: number, nowMs: number, max: number): Promise<PendingDownlinks> {
    const all = await this.scanDownlinks(edgeId)
    const expired = all.filter((d) => d.expiresAtMs !== 0 && d.expiresAtMs <= nowMs)
    if (expired.length > 0) await this.meta.batch(expired.map((d) => ({ type: 'del' as const, key: `${K_DL}${edgeId}/${pad(d.seq)}` })))
    const live = all.filter((d) => (d.expiresAtMs === 0 || d.expiresAtMs > nowMs) && d.seq > afterSeq)
    return { downlinks: live.slice(0, max), expired: expired.length }
  }

  async ackDownlinks (edgeId: string, upToSeq: number): Promise<void> {
    const all = await this.scanDownlinks(edgeId)
    const done = all.filter((d) => d.seq <= upToSeq)
    if (done.length > 0) await this.meta.batch(done.map((d) => ({ type: 'del' as const, key: `${K_DL}${edgeId}/${pad(d.seq)}` })))
  }

  async acquireLease (edgeId: string, holder: string, ttlMs: number, nowMs: number): Promise<LeaseOutcome> {
    return this.leases.acquire(edgeId, holder, ttlMs, nowMs)
  }

  async renewLease (lease: Lease, ttlMs: number, nowMs: number): Promise<LeaseOutcome> {
    return this.leases.renew(lease, ttlMs, nowMs)
  }

  async releaseLease (lease: Lease): Promise<void> {
    this.leases.release(lease)
  }

  async stats (): Promise<StoreStats> {
    const s = this.log.stats()
    let pending = 0
    for await (const _ of this.meta.scan(K_DL)) pending++ // eslint-disable-line @typescript-eslint/no-unused-vars
    return { records: s.appendedRecords, bytes: s.bytesOnDisk, edges: this.committed.size, pendingDownlinks: pending }
  }

  // Committed offsets + the log offset they are exact up to, in one atomic batch. Only offsets
  // that are durable are written, so `scanned` = the durable end is exact.
  private checkpoint (): void {
    if (!this.dirty || this.failed !== undefined) return
    this.dirty = false
    // Only durable, applied batches are in `committed`; a batch appended but not applied starts
    // at or after `scanned`, so the rescan at open() finds it again.
    let scanned = this.log.stats().endOffset
    for (const s of this.inflightStarts) if (s < scanned) scanned = s
    const ops = [...this.committed].map(([edge, n]) => ({ type: 'put' as const, key: K_COMMITTED + edge, value: Buffer.from(String(n)) }))
    ops.push({ type: 'put', key: K_SCANNED, value: Buffer.from(String(scanned)) })
    this.checkpointing = this.checkpointing.then(async () => { await this.meta.batch(ops) }).catch((err: Error) => {
      this.dirty = true
      this.logger.warn({ err }, 'cloud store checkpoint failed (will retry)')
    })
  }

  async close (): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    this.dirty = true
    this.checkpoint()
    await this.checkpointing
    await this.log.close()
    await this.meta.close()
  }
}
