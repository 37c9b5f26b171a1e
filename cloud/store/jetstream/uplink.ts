// The uplink: every edge's records in one replicated stream, one subject per edge, one stream
// message ("chunk") per run of consecutive records. See JETSTREAM.md for why chunks and why the
// per-edge chain (Nats-Expected-Last-Subject-Sequence) is what makes writes idempotent.
import { headers, type MsgHdrs } from '@nats-io/transport-node'
import type { JetStreamClient, JetStreamManager, StoredMsg } from '@nats-io/jetstream'
import type { Logger } from 'pino'
import type { AppendBatchInput, StoreReadBatch, StoreReadLimits, StoredRecord } from '../types.js'
import type { BridgeRecord } from '../../../src/protocol/bridge-frames.js'
import { tributaryError } from '../../../src/errors/index.js'
import { decodeChunk, encodeChunk, recordEncodedBytes, chunkOverheadBytes, type ChunkRecord } from './chunk-codec.js'
import { edgeFromSubject, encodeToken, uplinkSubject, type StoreNames } from './subjects.js'
import type { OffsetMirror } from './offsets.js'

// A cloud-wide position is streamSeq * RECORDS_PER_CHUNK + index in chunk: opaque, increasing,
// exact (streamSeq < 2^37 keeps it under 2^53). It also caps a chunk's record count.
export const RECORDS_PER_CHUNK = 65_536

export function positionOf (streamSeq: number, index: number): number {
  return streamSeq * RECORDS_PER_CHUNK + index
}

const H_FROM = 'Trib-From'
const H_TO = 'Trib-To'
const H_COUNT = 'Trib-Count'
const H_RECORDS = 'Trib-Records' // cumulative records of this edge, this chunk included
const H_BYTES = 'Trib-Bytes' // cumulative payload bytes of this edge
const H_TS_MAX = 'Trib-Ts-Max' // largest record timestamp in the chunk (-1 when empty)

export interface UplinkOptions {
  // Body bytes per chunk: below the server's max_payload (1 MiB by default) with room for headers.
  maxChunkBytes: number
  // How long one append keeps retrying through a leader election or a lost node before failing.
  retryBudgetMs: number
  publishTimeoutMs: number
}

interface EdgeHead {
  subjectSeq: number // stream sequence of the edge's last chunk (0: none)
  committed: number // edge offset up to which the edge's data is stored
  records: number
  bytes: number
}

class Resync extends Error {}
const MAX_RESYNCS = 8

// Chunks are immutable: a few recently read ones are kept for readers that page through them.
const CHUNK_CACHE_ENTRIES = 16

interface DecodedChunk { seq: number, subject: string, edgeId: string, records: ChunkRecord[] }

export class Uplink {
  private readonly heads = new Map<string, EdgeHead>()
  private readonly tails = new Map<string, Promise<unknown>>()
  private readonly cache = new Map<number, DecodedChunk>()

  constructor (
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly names: StoreNames,
    private readonly mirror: OffsetMirror,
    private readonly opts: UplinkOptions,
    private readonly log: Logger
  ) {}

  // Appends of one edge run one after another, in call order (the chain needs the previous head).
  async append (edgeId: string, batch: AppendBatchInput): Promise<{ committed: number, appended: number }> {
    const prev = this.tails.get(edgeId) ?? Promise.resolve()
    const run = prev.then(async () => await this.appendInOrder(edgeId, batch), async () => await this.appendInOrder(edgeId, batch))
    this.tails.set(edgeId, run)
    try {
      return await run
    } finally {
      if (this.tails.get(edgeId) === run) this.tails.delete(edgeId)
    }
  }

  async committed (edgeId: string): Promise<number> {
    const head = await this.loadHead(edgeId)
    return head.committed
  }

  private async loadHead (edgeId: string): Promise<EdgeHead> {
    const last = await this.jsm.streams.getMessage(this.names.uplinkStream, { last_by_subj: uplinkSubject(this.names, edgeId) })
    const mirrored = await this.mirror.read(edgeId)
    const head: EdgeHead = last === null
      ? { subjectSeq: 0, committed: 0, records: 0, bytes: 0 }
      : { subjectSeq: last.seq, committed: num(last.header, H_TO), records: num(last.header, H_RECORDS), bytes: num(last.header, H_BYTES) }
    // The KV mirror only matters when retention removed the edge's last chunk.
    if (mirrored > head.committed) head.committed = mirrored
    this.heads.set(edgeId, head)
    return head
  }

  private async appendInOrder (edgeId: string, batch: AppendBatchInput): Promise<{ committed: number, appended: number }> {
    const deadline = Date.now() + this.opts.retryBudgetMs
    let appended = 0
    let delayMs = 50
    let resyncs = 0
    for (;;) {
      try {
        const head = this.heads.get(edgeId) ?? await this.loadHead(edgeId)
        appended += await this.writeFrom(edgeId, batch, head)
        return { committed: (this.heads.get(edgeId) as EdgeHead).committed, appended }
      } catch (err) {
        // Whatever happened, our idea of the edge's head may be wrong now: re-read it.
        this.heads.delete(edgeId)
        // Bounded: each resync re-reads the head, which normally settles it at once.
        if (err instanceof Resync && ++resyncs <= MAX_RESYNCS) continue
        if (Date.now() > deadline) {
          throw tributaryError('TRIB_ERR_STORE_IO', `JetStream append for edge ${edgeId} failed: ${(err as Error).message}`, { edgeId }, err)
        }
        this.log.warn({ edgeId, err: (err as Error).message }, 'JetStream append failed, retrying')
        await sleep(delayMs)
        delayMs = Math.min(delayMs * 2, 1_000)
      }
    }
  }

  // Writes the part of `batch` at or past head.committed, chunk by chunk. Returns records written.
  private async writeFrom (edgeId: string, batch: AppendBatchInput, start: EdgeHead): Promise<number> {
    let head = start
    if (batch.toOffset <= head.committed) return 0
    // A batch past the committed offset is legitimate only when the edge's retention deleted
    // records it never replicated (disk cap; the edge counts them). Anything else would be a bug
    // in call ordering (see JetStreamCloudStore.appendBatch): say so.
    if (batch.fromOffset > head.committed) this.log.warn({ edgeId, fromOffset: batch.fromOffset, committed: head.committed }, 'batch starts past the committed offset (records dropped at the edge?)')
    const records = batch.records
    let i = 0
    while (i < records.length && (records[i] as BridgeRecord).offset < head.committed) i++
    let written = 0
    const subject = uplinkSubject(this.names, edgeId)
    do {
      let bytes = 0
      let j = i
      while (j < records.length && j - i < RECORDS_PER_CHUNK) {
        const size = recordEncodedBytes(records[j] as BridgeRecord)
        if (j > i && bytes + size > this.opts.maxChunkBytes - chunkOverheadBytes()) break
        bytes += size
        j++
      }
      const from = i < records.length ? (records[i] as BridgeRecord).offset : Math.max(head.committed, batch.fromOffset)
      const to = j < records.length ? (records[j] as BridgeRecord).offset : batch.toOffset
      let payloadBytes = 0
      let tsMax = -1
      for (let k = i; k < j; k++) {
        const r = records[k] as BridgeRecord
        payloadBytes += r.payload.length
        if (r.timestampMs > tsMax) tsMax = r.timestampMs
      }
      const h = headers()
      h.set(H_FROM, String(from))
      h.set(H_TO, String(to))
      h.set(H_COUNT, String(j - i))
      h.set(H_RECORDS, String(head.records + j - i))
      h.set(H_BYTES, String(head.bytes + payloadBytes))
      h.set(H_TS_MAX, String(tsMax))
      const ack = await this.js.publish(subject, encodeChunk(records, i, j, bytes), {
        headers: h,
        // A lost ack retried within the duplicate window comes back as a duplicate, not a copy.
        msgID: `${encodeToken(edgeId)}:${from}:${to}`,
        // The chain: stored only if the edge's last chunk is the one we think it is. A retry
        // after an unknown outcome, or another node writing this edge, fails here instead of
        // writing a second copy.
        expect: { lastSubjectSequence: head.subjectSeq },
        timeout: this.opts.publishTimeoutMs
      })
      if (ack.duplicate) throw new Resync('duplicate chunk: re-read the head')
      head = { subjectSeq: ack.seq, committed: to, records: head.records + j - i, bytes: head.bytes + payloadBytes }
      this.heads.set(edgeId, head)
      this.mirror.record(edgeId, to)
      written += j - i
      i = j
    } while (i < records.length)
    return written
  }

  async endSeq (): Promise<number> {
    const info = await this.jsm.streams.info(this.names.uplinkStream)
    return positionOf(info.state.last_seq + 1, 0)
  }

  // Records from `fromSeq` on, optionally one edge (server-side subject filter) and one topic.
  async read (fromSeq: number, limits: StoreReadLimits | undefined, edgeId?: string, topic?: string): Promise<StoreReadBatch> {
    const maxRecords = limits?.maxRecords ?? 1000
    const maxBytes = limits?.maxBytes ?? Infinity
    const filter = edgeId === undefined ? `${this.names.uplinkPrefix}.*` : uplinkSubject(this.names, edgeId)
    let streamSeq = Math.max(1, Math.floor(fromSeq / RECORDS_PER_CHUNK))
    let index = fromSeq >= RECORDS_PER_CHUNK ? fromSeq % RECORDS_PER_CHUNK : 0
    const records: StoredRecord[] = []
    let bytes = 0
    for (;;) {
      const chunk = await this.chunkAtOrAfter(streamSeq, filter)
      if (chunk === undefined) {
        return { status: records.length === 0 ? 'end' : 'ok', records, nextSeq: positionOf(streamSeq, index) }
      }
      if (chunk.seq !== streamSeq) index = 0
      streamSeq = chunk.seq
      for (; index < chunk.records.length; index++) {
        const r = chunk.records[index] as ChunkRecord
        if (topic !== undefined && r.topic !== topic) continue
        if (records.length >= maxRecords || (records.length > 0 && bytes + r.payload.length > maxBytes)) {
          return { status: 'ok', records, nextSeq: positionOf(streamSeq, index) }
        }
        bytes += r.payload.length
        const seq = positionOf(streamSeq, index)
        records.push({ seq, nextSeq: seq + 1, edgeId: chunk.edgeId, edgeOffset: r.offset, timestampMs: r.timestampMs, topic: r.topic, qos: r.qos, retain: r.retain, payload: r.payload })
      }
      // Past the chunk's last record: continue at the next stream message.
      const last = records[records.length - 1]
      if (last !== undefined && last.seq === positionOf(streamSeq, chunk.records.length - 1)) last.nextSeq = positionOf(streamSeq + 1, 0)
      streamSeq++
      index = 0
      if (records.length >= maxRecords) return { status: 'ok', records, nextSeq: positionOf(streamSeq, 0) }
    }
  }

  // The first record (in stream order) whose edge timestamp is >= timeMs; the end when none is.
  // Linear over chunk headers from the stream's start: see JETSTREAM.md (known limit).
  async seqForTime (timeMs: number): Promise<number> {
    const filter = `${this.names.uplinkPrefix}.*`
    let streamSeq = 1
    for (;;) {
      const msg = await this.jsm.streams.getMessage(this.names.uplinkStream, nextRequest(streamSeq, filter))
      if (msg === null) return await this.endSeq()
      if (num(msg.header, H_TS_MAX) >= timeMs) {
        const chunk = this.decode(msg)
        const i = chunk.records.findIndex((r) => r.timestampMs >= timeMs)
        if (i >= 0) return positionOf(msg.seq, i)
      }
      streamSeq = msg.seq + 1
    }
  }

  // Records and payload bytes per edge, from each edge's last chunk header (cumulative counts).
  async totals (): Promise<{ records: number, bytes: number, edges: number }> {
    const info = await this.jsm.streams.info(this.names.uplinkStream, { subjects_filter: `${this.names.uplinkPrefix}.*` })
    const subjects = Object.keys(info.state.subjects ?? {})
    let records = 0
    let bytes = 0
    for (const subject of subjects) {
      const last = await this.jsm.streams.getMessage(this.names.uplinkStream, { last_by_subj: subject })
      if (last === null) continue
      records += num(last.header, H_RECORDS)
      bytes += num(last.header, H_BYTES)
    }
    return { records, bytes, edges: subjects.length }
  }

  private async chunkAtOrAfter (streamSeq: number, filter: string): Promise<DecodedChunk | undefined> {
    const cached = this.cache.get(streamSeq)
    if (cached !== undefined && subjectMatches(filter, cached.subject)) return cached
    const msg = await this.jsm.streams.getMessage(this.names.uplinkStream, nextRequest(streamSeq, filter))
    if (msg === null) return undefined
    return this.decode(msg)
  }

  private decode (msg: StoredMsg): DecodedChunk {
    const hit = this.cache.get(msg.seq)
    if (hit !== undefined) return hit
    const data = Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength)
    const records = decodeChunk(data)
    const edgeId = edgeFromSubject(this.names.uplinkPrefix, msg.subject)
    if (records === undefined || edgeId === undefined) {
      // Someone else's message on our subjects, or corruption: an invariant, not an outcome.
      throw tributaryError('TRIB_ERR_STORE_IO', `malformed chunk at ${this.names.uplinkStream} seq ${msg.seq}`, { seq: msg.seq, subject: msg.subject })
    }
    const chunk = { seq: msg.seq, subject: msg.subject, edgeId, records }
    if (this.cache.size >= CHUNK_CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value as number)
    this.cache.set(msg.seq, chunk)
    return chunk
  }
}

// nats-server 2.9 accepts next_by_subj in $JS.API.STREAM.MSG.GET (answered by the stream
// leader, so reads see every acknowledged write); the client's type only lists seq/last_by_subj.
function nextRequest (seq: number, subject: string): { seq: number } {
  return { seq, next_by_subj: subject } as unknown as { seq: number }
}

function subjectMatches (filter: string, subject: string): boolean {
  return filter.endsWith('.*') ? subject.startsWith(filter.slice(0, -1)) : filter === subject
}

function num (h: MsgHdrs | undefined, name: string): number {
  const v = h?.get(name)
  const n = v === undefined || v === '' ? 0 : Number(v)
  return Number.isFinite(n) ? n : 0
}

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}
