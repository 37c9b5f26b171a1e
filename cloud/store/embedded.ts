// The embedded cloud store: one node, one commitlog for every edge plus a MetaStore for committed
// offsets and downlink queues.
//
// Record mapping into the commitlog (see cloud/README.md): a batch from an edge is stored as few
// log records ("chunks"), each one a bridge BATCH frame (src/protocol/bridge-frames.ts) of at most
// CHUNK_MAX_RECORDS records:
//   topic    = edgeId, clientId = edgeId      (one cached string per edge in the log)
//   payload  = BATCH frame: edgeId | fromOffset | toOffset | records (offset, next offset, original
//              timestamp, qos, retain, topic, payload)
//   timestamp = the newest record's original timestamp (clamped by the log to never go backwards)
// A LOG_BATCH frame (the edge's log bytes as they are) that arrives whole and new is stored as it
// came, as one chunk of up to maxRecordsPerBatch messages (it fits the log's maxRecordBytes when
// the edge's batchMaxBytes does; otherwise it is split into BATCH chunks). Readers handle both.
// Why chunks, not one log record per message: the per-record work of the log (framing, CRC call,
// topic index, durable callback) and of the reader dominated the cloud's CPU in a backlog drain;
// a chunk pays it once for up to 1,024 messages.
// The cloud-wide sequence of a message is `chunk log offset + index in the chunk` (opaque to
// callers, increasing in store order, unique: a chunk spans more log bytes than it has messages).
// A sequence inside a chunk (a read that stopped mid-chunk, a replay from one message) needs the
// chunk's start: `ChunkStarts` keeps the starts of chunks written or read since open (16 bytes per
// ~1,000 messages), and finds older ones through the log's time index.
//
// Crash safety: an append is acked (committedOffset) only after the log reports it durable. The
// per-edge committed offsets in the MetaStore may lag the log; `meta: cloud/scanned` says up to
// which log offset they are exact, and open() rescans the log from there (chunk headers only), so
// the dedupe key can never be behind what the log holds. Chunks appended but not yet durable at a
// crash are lost with the torn tail: they were never acked, the edge resends them.
import type { AppendInput, AppendResult, DurableCallback, LogRecord, ReadBatch, ReadLimits } from '../../src/commitlog/types.js'
import { SEGMENT_END_BYTES } from '../../src/commitlog/format.js'
import type { MetaStore } from '../../src/meta/types.js'
import { isTributaryError, tributaryError } from '../../src/errors/index.js'
import type { Logger } from '../../src/log/index.js'
import {
  decodeBatchHeader, decodeFrame, encodeBatch, encodeBatchRaw, FrameType, LazyBatchFrame, LazyLogBatchFrame, LOG_BATCH_RUN_HEADER_BYTES,
  logRecordLength, logRecordPayloadStart, logRecordQos, logRecordRetain, logRecordTimestamp, logRecordTopicEnd, logRecordTopicStart,
  recordEnd, recordOffsetAt, recordTimestampAt, type BatchHeader, type QoSLevel
} from '../../src/protocol/bridge-frames.js'
import { LeaseTable } from './leases.js'
import type {
  AppendBatchInput, AppendOutcome, CloudStore, Downlink, DownlinkInput, Lease, LeaseOutcome,
  PendingDownlinks, StoreReadBatch, StoreReadLimits, StoreStats, StoredRecord
} from './types.js'

// What this store needs of the commitlog (src/commitlog's CommitLog provides it).
export interface CloudLog {
  append (input: AppendInput, onDurable: DurableCallback): AppendResult
  read (offset: number, limits?: ReadLimits): ReadBatch | Promise<ReadBatch>
  // What is in the file (not only appended): reads stop there, so no read writes synchronously.
  readonly writtenOffset: number
  waitForWritten (offset: number): Promise<void>
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
// Messages stored up to `cloud/scanned` (log records are chunks, so the log cannot count them).
const K_MESSAGES = 'cloud/messages'
const K_COMMITTED = 'cloud/committed/'
const K_DL = 'cloud/dl/'
const K_DLSEQ = 'cloud/dlseq/'
const K_CURSOR = 'cloud/cursor/'
const DEFAULT_MAX_RECORDS = 1000
// readTopic scans the whole log and filters: bound the records examined per call so one replay
// request cannot monopolise the event loop; the caller continues from nextSeq.
const TOPIC_SCAN_RECORDS = 20_000
const SEQ_DIGITS = 16

// Chunk bounds. Records: the sequence scale (see the top of this file). Bytes: a chunk is one log
// record, so it must stay under the log's maxRecordBytes; we start at CHUNK_MAX_BYTES and learn
// the log's limit from its first refusal (TRIB_ERR_LOG_RECORD_TOO_LARGE carries it).
const CHUNK_MAX_RECORDS = 1024
// Chunk starts remembered (16 B each, ~1,000 messages per chunk); the oldest half is forgotten
// when full (found again through the time index).
const MAX_KNOWN_CHUNKS = 1_000_000
const CHUNK_MAX_BYTES = 256 * 1024
// The log's own framing around a chunk (record header + topic + client id), with room to spare.
const LOG_RECORD_OVERHEAD = 64
// Per-record bytes of a BATCH frame beyond topic and payload, and the frame's own header.
const FRAME_RECORD_FIXED = 38
const FRAME_FIXED = 4 + 2 + 16 + 4

function pad (n: number): string { return String(n).padStart(SEQ_DIGITS, '0') }

// Sorted [start, next) log ranges of known chunks, each with a summary when known: its message
// count, its edge, whether it is a LOG_BATCH and whether a message in it is retained. The summary
// lets the dispatcher skip a quiet edge's chunks without reading them (see skipQuiet).
// Summary bits: 1 = retained, 2 = LOG_BATCH, edge index << 2; 0 = no summary.
const SUMMARY_RETAINED = 1
const SUMMARY_LOG_BATCH = 2
const MAX_SUMMARY_EDGES = 1 << 20 // edges beyond this many get no summary (their chunks are read)
class ChunkStarts {
  private starts: number[] = []
  private nexts: number[] = []
  private counts: number[] = []
  private summaries: number[] = []
  private readonly edgeIndex = new Map<string, number>()
  private readonly edges: string[] = []

  add (start: number, next: number, count = 0, edgeId?: string, logBatch = false, retained = true): void {
    const summary = edgeId === undefined ? 0 : this.summary(edgeId, logBatch, retained)
    const n = this.starts.length
    if (n === 0 || start > this.starts[n - 1]) {
      this.starts.push(start); this.nexts.push(next); this.counts.push(count); this.summaries.push(summary)
    } else {
      const i = this.lowerBound(start)
      if (this.starts[i] === start) { if (this.summaries[i] === 0 && summary !== 0) { this.counts[i] = count; this.summaries[i] = summary } return }
      this.starts.splice(i, 0, start); this.nexts.splice(i, 0, next); this.counts.splice(i, 0, count); this.summaries.splice(i, 0, summary)
    }
    if (this.starts.length > MAX_KNOWN_CHUNKS) {
      const half = MAX_KNOWN_CHUNKS >> 1
      this.starts = this.starts.slice(half); this.nexts = this.nexts.slice(half)
      this.counts = this.counts.slice(half); this.summaries = this.summaries.slice(half)
    }
  }

  private summary (edgeId: string, logBatch: boolean, retained: boolean): number {
    let e = this.edgeIndex.get(edgeId)
    if (e === undefined) {
      if (this.edges.length >= MAX_SUMMARY_EDGES) return 0
      e = this.edges.length
      this.edges.push(edgeId)
      this.edgeIndex.set(edgeId, e)
    }
    return e * 4 + (logBatch ? SUMMARY_LOG_BATCH : 0) + (retained ? SUMMARY_RETAINED : 0)
  }

  // From `offset` (a chunk start, `index` messages into it), skips every following chunk whose
  // summary says: LOG_BATCH, nothing retained, of an edge `quiet` calls quiet; stops at the first
  // other one, an unknown one, or once `budget` messages were skipped. `out` gets where the reader
  // continues (offset, index) and the messages skipped.
  skipQuiet (offset: number, index: number, budget: number, quiet: (edgeId: string) => boolean, out: SkipResult): void {
    out.offset = offset; out.index = index; out.skipped = 0
    let i = this.lowerBound(offset)
    while (i < this.starts.length && this.starts[i] === out.offset && out.skipped < budget) {
      const s = this.summaries[i]
      if ((s & (SUMMARY_LOG_BATCH | SUMMARY_RETAINED)) !== SUMMARY_LOG_BATCH || !quiet(this.edges[s >>> 2])) return
      out.skipped += Math.max(0, this.counts[i] - out.index)
      out.index = 0
      const next = this.nexts[i]
      // The next chunk follows at once, or after the end-of-segment marker of a rolled segment.
      const follows = i + 1 < this.starts.length && this.starts[i + 1] - next >= 0 && this.starts[i + 1] - next <= SEGMENT_END_BYTES
      out.offset = follows ? this.starts[i + 1] : next
      i++
    }
  }

  // Where a read for seq starts: the start of the known chunk holding seq, or seq itself when it
  // is a known chunk's end (the next chunk's start, or the end of a segment, where the log's read
  // continues in the next segment); else -1.
  find (seq: number): number {
    const i = this.lowerBound(seq + 1) - 1
    if (i >= 0 && seq < this.nexts[i]) return this.starts[i]
    if (i >= 0 && seq === this.nexts[i]) return seq
    return -1
  }

  // The greatest known start at or before seq, or -1.
  before (seq: number): number {
    const i = this.lowerBound(seq + 1) - 1
    return i >= 0 ? this.starts[i] : -1
  }

  // First index whose start is >= x.
  private lowerBound (x: number): number {
    let lo = 0
    let hi = this.starts.length
    while (lo < hi) { const mid = (lo + hi) >> 1; if (this.starts[mid] < x) lo = mid + 1; else hi = mid }
    return lo
  }
}

// Topic strings of stored messages, interned by their bytes: a reader that sees the same few
// thousand device topics a million times makes a string for each once, not per message, and the
// Map lookups keyed by it (the dispatcher's subscriber presence) reuse its cached hash. A hash
// collision only costs a fresh string (the entry is replaced).
const MAX_INTERNED_TOPICS = 65_536 // ~100 B each; the table restarts when full
class TopicNames {
  private readonly table = new Map<number, { bytes: Buffer, name: string }>()

  get (buf: Buffer, start: number, end: number): string {
    let h = 0x811c9dc5 // FNV-1a
    for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i], 0x01000193)
    h = (h ^ (end - start)) | 0
    const e = this.table.get(h)
    if (e !== undefined && e.bytes.length === end - start) {
      const b = e.bytes
      let i = 0
      while (i < b.length && b[i] === buf[start + i]) i++
      if (i === b.length) return e.name
    }
    const name = buf.toString('utf8', start, end)
    if (this.table.size >= MAX_INTERNED_TOPICS) this.table.clear()
    this.table.set(h, { bytes: Buffer.from(buf.subarray(start, end)), name })
    return name
  }
}

interface SkipResult { offset: number, index: number, skipped: number }

// Whether the dispatcher wants a message (its cloud topic has a subscriber, or it is retained).
export type DispatchFilter = (edgeId: string, topic: string, retain: boolean) => boolean

// Walks the messages of one stored chunk, BATCH (records with their own offsets) or LOG_BATCH
// (runs of edge log records), without an object per message. One instance, reset per chunk.
class ChunkCursor {
  buf: Buffer = Buffer.alloc(0)
  count = 0
  private log = false
  // Current message: its first byte, topic, payload and end.
  at = 0
  topicStart = 0
  topicEnd = 0
  payloadStart = 0
  end = 0
  // LOG_BATCH: the current run.
  private runStart = 0
  private runEnd = 0
  private runOffset = 0
  private runsLeft = 0

  reset (buf: Buffer, h: BatchHeader | undefined): void {
    this.buf = buf
    this.count = h === undefined ? 0 : h.count
    this.log = h !== undefined && h.type === FrameType.LOG_BATCH
    if (h === undefined) return
    if (this.log) {
      this.runsLeft = buf.readUInt32BE(h.recordsAt)
      this.runEnd = h.recordsAt + 4
      this.at = this.runEnd
      this.nextRun()
    } else {
      this.at = h.recordsAt
    }
    this.fields()
  }

  private nextRun (): void {
    if (this.runsLeft === 0 || this.runEnd + LOG_BATCH_RUN_HEADER_BYTES > this.buf.length) { this.at = this.buf.length; return }
    this.runsLeft--
    const h = this.runEnd
    this.runOffset = recordOffsetAt(this.buf, h)
    this.runStart = h + LOG_BATCH_RUN_HEADER_BYTES
    this.runEnd = this.runStart + this.buf.readUInt32BE(h + 8)
    this.at = this.runStart
  }

  private fields (): void {
    const buf = this.buf
    const at = this.at
    if (this.log) {
      if (at + 29 > buf.length) { this.end = Infinity; return }
      this.topicStart = logRecordTopicStart(at)
      this.topicEnd = logRecordTopicEnd(buf, at)
      this.payloadStart = logRecordPayloadStart(buf, at)
      this.end = at + logRecordLength(buf, at)
      return
    }
    this.topicStart = at + 28
    this.topicEnd = this.topicStart > buf.length ? buf.length : this.topicStart + buf.readUInt16BE(at + 26)
    this.payloadStart = this.topicEnd + 4
    this.end = this.payloadStart > buf.length ? Infinity : this.payloadStart + buf.readUInt32BE(this.topicEnd)
  }

  valid (): boolean { return this.end <= this.buf.length && this.topicEnd <= this.payloadStart }

  next (): void {
    this.at = this.end
    if (this.log && this.at >= this.runEnd) this.nextRun()
    if (this.at < this.buf.length) this.fields()
    else this.end = Infinity
  }

  edgeOffset (): number { return this.log ? this.runOffset + (this.at - this.runStart) : recordOffsetAt(this.buf, this.at) }
  timestamp (): number { return this.log ? logRecordTimestamp(this.buf, this.at) : recordTimestampAt(this.buf, this.at) }
  qos (): QoSLevel { return this.log ? logRecordQos(this.buf, this.at) : this.buf[this.at + 24] as QoSLevel }
  retain (): boolean { return this.log ? logRecordRetain(this.buf, this.at) : this.buf[this.at + 25] === 1 }
}

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
  // Largest chunk (bytes) appended as one log record: lowered to the log's limit if it refuses one.
  private chunkMaxBytes = CHUNK_MAX_BYTES
  // The log's maxRecordBytes, once it refused a chunk as too large (LOG_BATCH frames are tried
  // as they are until then).
  private logRecordLimit = Infinity
  private messages = 0
  private readonly chunks = new ChunkStarts()
  private readonly cursor = new ChunkCursor()
  private readonly skip: SkipResult = { offset: 0, index: 0, skipped: 0 }
  private readonly topicNames = new TopicNames()

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
    const messagesBuf = await this.meta.get(K_MESSAGES)
    for (;;) {
      const b = await this.log.read(offset, { maxRecords: 10_000 })
      if (b.status === 'end') break
      for (const r of b.records) {
        const h = r.topic === r.clientId ? decodeBatchHeader(r.payload) : undefined
        if (h === undefined || h.edgeId !== r.clientId) continue // not a chunk (cannot happen unless someone else wrote here)
        if (h.toOffset > (this.committed.get(h.edgeId) ?? 0)) this.committed.set(h.edgeId, h.toOffset)
        rescanned += h.count
      }
      offset = b.nextOffset
    }
    for (const [edge, n] of this.committed) this.appendedUpTo.set(edge, n)
    this.messages = (messagesBuf === undefined ? 0 : Number(messagesBuf.toString())) + rescanned
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
    // The hot path: a batch checked by scanBatchFrame, all new (not a replay): its record bytes
    // are stored as they arrived, without decoding.
    if (batch instanceof LazyBatchFrame && batch.raw.firstOffset >= upTo) return await this.appendRaw(edgeId, batch, upTo)
    if (batch instanceof LazyLogBatchFrame && batch.raw.firstOffset >= upTo && batch.edgeId === edgeId && batch.raw.buf.length + LOG_RECORD_OVERHEAD + 2 * edgeId.length <= this.logRecordLimit) {
      const done = await this.appendLogBatch(edgeId, batch, upTo)
      if (done !== undefined) return done
      // The log refused it as too large (its limit is now known): split below, as objects.
    }
    const records = batch.records
    // Skip the replayed part of a batch (records below the dedupe key): records are in offset order.
    let first = 0
    while (first < records.length && records[first].offset < upTo) first++
    const appended = records.length - first
    let startLogOffset = -1
    const toOffset = Math.max(batch.toOffset, upTo)
    try {
      let i = first
      while (i < records.length) {
        // One chunk: up to CHUNK_MAX_RECORDS records and chunkMaxBytes bytes (at least one record).
        let bytes = FRAME_FIXED + edgeId.length
        let n = 0
        let maxTs = 0
        while (i + n < records.length && n < CHUNK_MAX_RECORDS) {
          const r = records[i + n]
          const b = FRAME_RECORD_FIXED + r.topic.length * 3 + r.payload.length // topic: UTF-8 bound
          if (n > 0 && bytes + b > this.chunkMaxBytes) break
          bytes += b
          if (r.timestampMs > maxTs) maxTs = r.timestampMs
          n++
        }
        const last = i + n === records.length
        // The last chunk carries the batch's end (records filtered at the edge lie before it).
        const chunk = encodeBatch(edgeId, records[i].offset, last ? toOffset : records[i + n - 1].nextOffset, records, n, i)
        const res = this.appendChunk(edgeId, chunk, maxTs)
        if (res === undefined) continue // the chunk limit was learned: the same records again, in smaller chunks
        if (startLogOffset === -1) { startLogOffset = res.offset; this.inflightStarts.push(startLogOffset) }
        this.chunks.add(res.offset, res.nextOffset)
        this.appendedCount++
        i += n
      }
    } catch (err) {
      this.fail(err as Error)
      throw this.failed
    }
    return await this.commit(edgeId, upTo, toOffset, startLogOffset, appended)
  }

  // After a batch's chunks are appended: advance the dedupe key, wait until they are durable, ack.
  private async commit (edgeId: string, upTo: number, toOffset: number, startLogOffset: number, appended: number): Promise<AppendOutcome> {
    if (toOffset > upTo) this.appendedUpTo.set(edgeId, toOffset)
    // Wait until everything appended so far is durable: records of an earlier batch of this edge
    // that this one skipped may still be in flight.
    if (this.durableCount < this.appendedCount) {
      const target = this.appendedCount
      await new Promise<void>((resolve, reject) => { this.waiters.push({ appendedCount: target, resolve, reject }) })
    }
    if (startLogOffset !== -1) this.inflightStarts.splice(this.inflightStarts.indexOf(startLogOffset), 1)
    const prev = this.committed.get(edgeId) ?? 0
    const next = Math.max(prev, toOffset)
    if (next !== prev) { this.committed.set(edgeId, next); this.dirty = true }
    // Batches are applied in append order (durable waiters resolve FIFO), so `messages` always
    // counts exactly the chunks before the earliest in-flight one: what the checkpoint needs.
    this.messages += appended
    return { status: 'ok', committedOffset: next, appended }
  }

  // Stores a scanned batch: the frame itself when it is one chunk, else chunks copied from its
  // record bytes (no per-record objects either way).
  private async appendRaw (edgeId: string, batch: LazyBatchFrame, upTo: number): Promise<AppendOutcome> {
    const raw = batch.raw
    const buf = raw.buf
    const toOffset = Math.max(batch.toOffset, upTo)
    let startLogOffset = -1
    try {
      // As is: the frame names this edge (the session checked it; the recovery scan relies on it).
      if (raw.count > 0 && raw.count <= CHUNK_MAX_RECORDS && buf.length <= this.chunkMaxBytes && batch.toOffset >= upTo && batch.edgeId === edgeId) {
        let at = raw.recordsAt
        let maxTs = 0
        for (let i = 0; i < raw.count; i++) { const ts = recordTimestampAt(buf, at); if (ts > maxTs) maxTs = ts; at = recordEnd(buf, at) }
        const res = this.appendChunk(edgeId, buf, maxTs)
        if (res !== undefined) {
          startLogOffset = res.offset
          this.inflightStarts.push(startLogOffset)
          this.chunks.add(res.offset, res.nextOffset)
          this.appendedCount++
          return await this.commit(edgeId, upTo, toOffset, startLogOffset, raw.count)
        }
        // The log's limit was just learned: split below.
      }
      let at = raw.recordsAt
      let left = raw.count
      while (left > 0) {
        const start = at
        let n = 0
        let maxTs = 0
        const budget = this.chunkMaxBytes - 64 - edgeId.length
        while (n < left && n < CHUNK_MAX_RECORDS) {
          const e = recordEnd(buf, at)
          if (n > 0 && e - start > budget) break
          const ts = recordTimestampAt(buf, at)
          if (ts > maxTs) maxTs = ts
          at = e
          n++
        }
        left -= n
        // The last chunk carries the batch's end (records filtered at the edge lie before it).
        const chunkTo = left === 0 ? toOffset : recordOffsetAt(buf, at)
        const chunk = encodeBatchRaw(edgeId, recordOffsetAt(buf, start), chunkTo, buf, start, at, n)
        const res = this.appendChunk(edgeId, chunk, maxTs)
        if (res === undefined) { at = start; left += n; continue } // limit learned: smaller chunks
        if (startLogOffset === -1) { startLogOffset = res.offset; this.inflightStarts.push(startLogOffset) }
        this.chunks.add(res.offset, res.nextOffset)
        this.appendedCount++
      }
    } catch (err) {
      this.fail(err as Error)
      throw this.failed
    }
    return await this.commit(edgeId, upTo, toOffset, startLogOffset, raw.count)
  }

  // Stores a new LOG_BATCH frame as it arrived: one chunk (the frame names this edge, as the
  // recovery scan relies on). Undefined when the log refused it as too large.
  private async appendLogBatch (edgeId: string, batch: LazyLogBatchFrame, upTo: number): Promise<AppendOutcome | undefined> {
    const raw = batch.raw
    const toOffset = Math.max(batch.toOffset, upTo)
    if (raw.count === 0) return await this.commit(edgeId, upTo, toOffset, -1, 0)
    let res: AppendResult | undefined
    try {
      res = this.appendChunk(edgeId, raw.buf, raw.maxTimestampMs, raw.retained)
    } catch (err) {
      this.fail(err as Error)
      throw this.failed
    }
    if (res === undefined) return undefined
    this.inflightStarts.push(res.offset)
    this.chunks.add(res.offset, res.nextOffset, raw.count, edgeId, true, raw.retained)
    this.appendedCount++
    return await this.commit(edgeId, upTo, toOffset, res.offset, raw.count)
  }

  // Appends one chunk; undefined when the log refused it as too large and the chunk bound was
  // lowered to the log's limit (the caller retries with smaller chunks). Other errors throw.
  // `retained`: the chunk holds a retained message. Kept as the log record's retain flag, which a
  // reader gets for free: the dispatcher skips a LOG_BATCH chunk without walking its messages
  // when the flag is off and nobody subscribes to the edge's topics. (BATCH chunks, written
  // before this flag was kept, are always walked.)
  private appendChunk (edgeId: string, chunk: Buffer, timestampMs: number, retained = true): AppendResult | undefined {
    try {
      return this.log.append({ topic: edgeId, payload: chunk, qos: 1, retain: retained, clientId: edgeId, timestampMs }, this.onDurable)
    } catch (err) {
      const limit = (err as { details?: { maxRecordBytes?: unknown } }).details?.maxRecordBytes
      const bound = typeof limit === 'number' ? limit - LOG_RECORD_OVERHEAD - 2 * edgeId.length : 0
      // A single record that does not fit even alone cannot be stored: that is the log's error.
      // Undefined only when something was learned, so a caller's retry always makes progress.
      const learned = typeof limit === 'number' && (limit < this.logRecordLimit || bound < this.chunkMaxBytes)
      if (isTributaryError(err) && err.code === 'TRIB_ERR_LOG_RECORD_TOO_LARGE' && bound > 0 && chunk.length > bound && learned) {
        this.logRecordLimit = Math.min(this.logRecordLimit, limit as number)
        if (bound < this.chunkMaxBytes) this.chunkMaxBytes = bound
        return undefined
      }
      throw err
    }
  }

  async committedOffset (edgeId: string): Promise<number> {
    return this.committed.get(edgeId) ?? 0
  }

  // Messages from `fromSeq` in store order, at most `maxRecords`, optionally only those of one
  // edge and topic; `scanLimit` bounds the messages examined (a filtered read skips most).
  private async readChunks (fromSeq: number, maxRecords: number, scanLimit: number, edgeId?: string, topic?: string, keep?: DispatchFilter, quiet?: (edgeId: string) => boolean): Promise<StoreReadBatch & { scanned: number }> {
    const records: StoredRecord[] = []
    // Up to what the log has written, not appended: reading further would make the log write its
    // buffers out on this thread (see CommitLog.waitForWritten).
    const endOffset = this.log.writtenOffset
    if (fromSeq >= endOffset) return { status: 'end', records, nextSeq: fromSeq, scanned: 0 }
    let offset = fromSeq < this.log.stats().startOffset ? fromSeq : await this.chunkStart(fromSeq)
    // offset > fromSeq: fromSeq is the end of a segment's last chunk, offset the next chunk.
    let index = Math.max(0, fromSeq - offset)
    let scanned = 0
    let full = false
    const c = this.cursor
    while (!full) {
      if (quiet !== undefined) {
        // Chunks known to hold nothing anyone can want are skipped without reading them.
        const sk = this.skip
        this.chunks.skipQuiet(offset, index, scanLimit - scanned, quiet, sk)
        if (sk.skipped > 0 || sk.offset !== offset) {
          scanned += sk.skipped; offset = sk.offset; index = sk.index
          if (scanned >= scanLimit) break
        }
      }
      const b = await this.log.read(offset, { maxRecords: 4, maxOffset: endOffset })
      if (b.status === 'end') return { status: records.length === 0 ? 'end' : 'ok', records, nextSeq: offset + index, scanned }
      if (b.status === 'truncated') {
        if (records.length > 0) break // the gap is reported by the next call
        return { status: 'truncated', records, nextSeq: b.nextOffset, scanned }
      }
      for (const r of b.records) {
        if (edgeId !== undefined && r.clientId !== edgeId) {
          offset = r.nextOffset; index = 0
          if (++scanned >= scanLimit) { full = true; break }
          continue
        }
        // Not always the previous chunk's nextOffset: a segment roll leaves a gap.
        if (r.offset !== offset) { offset = r.offset; index = 0 }
        // Messages are read straight from the chunk's bytes (an object only for those returned).
        // The chunk was checked when it was stored and the log checks its CRC; a record that is
        // not a chunk (cannot happen unless someone else wrote into this log) is skipped.
        const buf = r.payload
        const h = r.topic === r.clientId ? decodeBatchHeader(buf) : undefined
        this.chunks.add(r.offset, r.nextOffset, h?.count ?? 0, h === undefined ? undefined : r.clientId, h?.type === FrameType.LOG_BATCH, r.retain)
        if (quiet !== undefined && h !== undefined && h.type === FrameType.LOG_BATCH && !r.retain && quiet(r.clientId)) {
          // Nothing in this chunk is retained and nobody subscribes to this edge: no walk.
          scanned += Math.max(0, h.count - index)
          offset = r.nextOffset
          index = 0
          if (records.length >= maxRecords || scanned >= scanLimit) { full = true; break }
          continue
        }
        c.reset(buf, h)
        const base = r.offset
        const last = c.count - 1
        let i = 0
        for (; i < index && i <= last; i++) c.next()
        for (; i <= last; i++) {
          if (records.length >= maxRecords || scanned >= scanLimit) break
          scanned++
          if (!c.valid()) { i = last + 1; break } // not a well-formed chunk: skipped
          const t = this.topicNames.get(buf, c.topicStart, c.topicEnd)
          if ((topic !== undefined && t !== topic) || (keep !== undefined && !keep(r.clientId, t, c.retain()))) { c.next(); continue }
          records.push({
            seq: base + i,
            // Past a chunk's last message a reader continues at the next log record.
            nextSeq: i === last ? r.nextOffset : base + i + 1,
            edgeId: r.clientId,
            edgeOffset: c.edgeOffset(),
            timestampMs: c.timestamp(),
            topic: t,
            qos: c.qos(),
            retain: c.retain(),
            payload: buf.subarray(c.payloadStart, c.end)
          })
          c.next()
        }
        if (i <= last) { index = i; full = true; break }
        offset = r.nextOffset
        index = 0
        if (records.length >= maxRecords || scanned >= scanLimit) { full = true; break }
      }
    }
    return { status: 'ok', records, nextSeq: offset + index, scanned }
  }

  // For the MQTT dispatcher: up to `maxScanned` messages from `fromSeq`, returning only those
  // `keep` accepts (no object, no payload view for the others); `scanned` counts them all.
  // `quiet(edgeId)`: no subscription can match any of that edge's cloud topics; then a chunk
  // without retained messages is skipped whole.
  async readForDispatch (fromSeq: number, maxScanned: number, keep: DispatchFilter, quiet?: (edgeId: string) => boolean): Promise<StoreReadBatch & { scanned: number }> {
    return await this.readChunks(fromSeq, maxScanned, maxScanned, undefined, undefined, keep, quiet)
  }

  // The log offset of the chunk holding `seq` (seq itself when it is a chunk start).
  private async chunkStart (seq: number): Promise<number> {
    const known = this.chunks.find(seq)
    if (known !== -1) return known
    // Not known (written before this open and not read since): find a chunk start at or before
    // seq through the time index (a binary search on time: offsetForTime only returns record
    // starts), then walk chunk by chunk, learning the starts on the way.
    let from = Math.max(this.chunks.before(seq), this.log.stats().startOffset)
    let lo = 0
    let hi = Date.now() + 366 * 24 * 3600 * 1000
    for (let step = 0; step < 64 && lo < hi; step++) {
      const mid = Math.floor((lo + hi) / 2)
      const at = await this.log.offsetForTime(mid)
      if (at <= seq) { if (at > from) from = at; lo = mid + 1 } else hi = mid
    }
    for (;;) {
      const b = await this.log.read(from, { maxRecords: 16 })
      if (b.records.length === 0) return from
      for (const r of b.records) {
        this.chunks.add(r.offset, r.nextOffset)
        if (seq < r.nextOffset) return r.offset
      }
      from = b.nextOffset
    }
  }

  async read (fromSeq: number, limits?: StoreReadLimits): Promise<StoreReadBatch> {
    const max = limits?.maxRecords ?? DEFAULT_MAX_RECORDS
    return await this.readChunks(fromSeq, max, max)
  }

  async readTopic (edgeId: string, topic: string, fromSeq: number, limits?: StoreReadLimits): Promise<StoreReadBatch> {
    return await this.readChunks(fromSeq, limits?.maxRecords ?? DEFAULT_MAX_RECORDS, TOPIC_SCAN_RECORDS, edgeId, topic)
  }

  async waitForData (seq: number): Promise<void> {
    await this.log.waitForWritten(seq)
  }

  async seqForTime (timeMs: number): Promise<number> {
    // A chunk's log timestamp is its newest message's: the first chunk at or after timeMs holds
    // the first message at or after it (timestamps of one edge only increase).
    const offset = await this.log.offsetForTime(timeMs)
    const b = await this.log.read(offset, { maxRecords: 1 })
    if (b.records.length === 0) return offset
    const r = b.records[0]
    const res = r.topic === r.clientId ? decodeFrame(r.payload) : undefined
    if (res?.ok === true && res.frame.type === FrameType.BATCH) {
      const recs = res.frame.records
      this.chunks.add(r.offset, r.nextOffset)
      for (let i = 0; i < recs.length; i++) if (recs[i].timestampMs >= timeMs) return r.offset + i
    }
    return r.nextOffset
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
    return { records: this.messages, bytes: s.bytesOnDisk, edges: this.committed.size, pendingDownlinks: pending }
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
    ops.push({ type: 'put', key: K_MESSAGES, value: Buffer.from(String(this.messages)) })
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
