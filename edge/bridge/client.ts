// The bridge client: replicates the edge commitlog to the cloud and applies downlinks.
//
//   disconnected --connect--> connecting --WELCOME--> ready --close/heartbeat timeout--> disconnected
//                                  |  REFUSE / error / timeout                            (backoff)
//
// Replication: read records from `readPos` up to the log's replicableOffset: written (page cache)
// and at most the replicate-ahead window past durableOffset, so the edge's fsync is not on the
// device-to-cloud path. A power loss can cost the edge records the cloud already holds (never
// acked to their publishers); the commitlog then leaves an offset gap of the window's size after
// the recovered end, so new records never reuse an offset the cloud's dedupe key has seen. With a
// window of 0 only durable records are sent. Keep those matching `forward`, send them as a
// LOG_BATCH covering [readPos, nextOffset) (the log's bytes as they are:
// src/commitlog/raw-read.ts, src/protocol/bridge-frames.ts), up to `windowBatches` full-size
// batches' worth of bytes unacked (SMALL_BATCHES_PER_SLOT small ones per slot). The cloud ACKs
// the edge offset up to which it holds everything durably; that is the checkpoint: registered as
// the log reader 'bridge' (retention keeps the backlog unless the disk cap forces drop-oldest,
// which the commitlog counts and logs) and saved in the MetaStore.
// On every (re)connect WELCOME says where the cloud is and the edge resumes exactly there;
// unacked batches are simply sent again (the cloud skips what it has).
// Batching by time: there is no linger; a batch leaves as soon as the window has room, so under
// load batches grow by themselves and an idle link sends a record within one flush interval.
import { WebSocket } from 'ws'
import type { AppendInput, AppendResult, DurableCallback, ReadBatch, ReadLimits } from '../../src/commitlog/types.js'
import type { Logger } from '../../src/log/index.js'
import type { MetaStore } from '../../src/meta/types.js'
import {
  DEFAULT_FRAME_LIMITS, FrameType, LOG_BATCH_RUN_HEADER_BYTES, RefuseCode, decodeFrame, encodeFrame, frameTypeName,
  logBatchHeaderBytes, writeLogBatchHeader, writeLogBatchRun, type BridgeFrame, type DownlinkFrame, type QoSLevel
} from '../../src/protocol/bridge-frames.js'
import {
  newRawRead, rawClientIdLength, rawFrameLength, rawTimestamp, rawTopicLength, rawTopicStart, readRaw, type RawRead,
  type RawReadLimits
} from '../../src/commitlog/raw-read.js'
import { TopicFilterSet } from '../../src/protocol/topic-filter.js'
import { RateCap, backoffMs } from './pacing.js'

// What the bridge needs of the commitlog (src/commitlog's CommitLog provides it).
export interface BridgeLog {
  readonly startOffset: number
  readonly endOffset: number
  // Up to where records may be sent (CommitLog.replicableOffset: written, at most the
  // replicate-ahead window past durableOffset).
  readonly replicableOffset: number
  append (input: AppendInput, onDurable: DurableCallback): AppendResult
  read (offset: number, limits?: ReadLimits & { maxOffset?: number }): ReadBatch
  // Raw bytes for the replication hot path (src/commitlog/raw-read.ts walks and checks them).
  readBytes (offset: number, into: Buffer, at: number, len: number, maxOffset: number): number
  // Where a read continues past an offset gap (CommitLog.skipGap).
  skipGap (offset: number): number
  // Bytes of offset gaps in [from, to) (CommitLog.gapBytesIn): lag figures leave them out.
  gapBytesIn (from: number, to: number): number
  // Resolves once replicableOffset > offset.
  waitForReplicable (offset: number): Promise<void>
  setReader (name: string, offset: number): void
  stats (): { droppedRecords: number }
}

export interface BridgeSettings {
  cloudUrls: readonly string[]
  edgeId: string
  cloudToken: string | undefined
  caFile?: string
  forward: readonly string[]
  batchMaxBytes: number
  batchMaxRecords: number
  windowBatches: number
  rateMsgsPerSec: number
  rateBytesPerSec: number
  heartbeatMs: number
  heartbeatTimeoutMs: number
  backoffMinMs: number
  backoffMaxMs: number
  connectTimeoutMs: number
  checkpointIntervalMs: number
}

export interface LocalPublish {
  topic: string
  payload: Buffer
  qos: QoSLevel
  retain: boolean
}

export interface BridgeDeps {
  log: BridgeLog
  meta: MetaStore
  settings: BridgeSettings
  logger: Logger
  // Publishes a downlink to local subscribers once it is in the log (the broker's aedes.publish).
  publishLocal: (msg: LocalPublish, appended: AppendResult, done: () => void) => void
  // Certificates a wss:// cloud may present a chain to (system CAs plus settings.caFile's);
  // undefined = Node's defaults.
  trustedCas?: string[]
  now?: () => number
}

// Records appended by the bridge itself (downlinks) carry this client id and are not sent back up.
export const DOWNLINK_CLIENT_ID = '$bridge/downlink'
const K_CHECKPOINT = 'bridge/checkpoint'
const K_DOWNLINK_SEQ = 'bridge/downlink-seq'
const READER = 'bridge'
const zeroMask = (mask: Buffer): void => { mask.fill(0) }

// Full-size frame buffers kept for reuse (each batchMaxBytes): enough for the socket's queue.
const MAX_SPARE_FRAMES = 4
// Smallest read: more than a frame's magic and length (8 bytes), so a 'short' read learns the
// first frame's size.
const MIN_READ_BYTES = 64

interface Inflight { toOffset: number, records: number, bytes: number, oldestTs: number, frameBytes: number }

// The window of unacked batches counts full-size batches: `windowBatches` x batchMaxBytes of
// frames (what bounds the memory a blocked link can queue), and at most this many batches per
// slot. On a live link batches are small (a few records, one per log write, ~1,000/s at 5,000
// msgs/s): counted one slot each, 32 of them filled within ~30 ms of a cloud fsync stall (30-300
// ms on this VM's disk) and the stall was back on the device-to-cloud path.
const SMALL_BATCHES_PER_SLOT = 32
// What shapeBatch made of a raw read (one reused object).
interface Shaped { count: number, runs: number, end: number, payloadBytes: number, oldestTs: number }

export interface BridgeStatus {
  state: 'disconnected' | 'connecting' | 'ready' | 'closed'
  url: string | undefined
  ackedOffset: number
  lagBytes: number
  lagMessages: number
  oldestUnackedAgeMs: number
  inflightBatches: number
}

export class BridgeCounters {
  batchesSent = 0
  recordsSent = 0
  bytesSent = 0
  acks = 0
  connects = 0
  disconnects = 0
  heartbeatTimeouts = 0
  refused = 0
  truncatedBytes = 0
  downlinksApplied = 0
  downlinksExpired = 0
  downlinksDuplicate = 0
}

export class BridgeClient {
  readonly counters = new BridgeCounters()
  private state: BridgeStatus['state'] = 'disconnected'
  private ws: WebSocket | undefined
  private gen = 0
  private urlIndex = 0
  private attempt = 0
  // Failed attempts since the last full round of URLs (or the last working link).
  private failedInRound = 0
  private acked = 0
  private readPos = 0
  private readonly inflight: Inflight[] = []
  private inflightFrameBytes = 0
  private pumping = false
  private waiting = false
  private lastHeard = 0
  private lastDownlinkSeq = 0
  private downlinkSeqDirty = false
  private checkpointDirty = false
  private savedAcked = -1
  private avgRecordBytes = 100
  private readonly filters: TopicFilterSet
  private readonly rate: RateCap
  private readonly now: () => number
  private readonly log: BridgeLog
  private readonly logger: Logger
  private readonly s: BridgeSettings
  private readonly trustedCas: string[] | undefined
  private heartbeatTimer: NodeJS.Timeout | undefined
  private checkpointTimer: NodeJS.Timeout | undefined
  private reconnectTimer: NodeJS.Timeout | undefined
  private rateTimer: NodeJS.Timeout | undefined
  private connectTimer: NodeJS.Timeout | undefined
  private pingNonce = 0
  // Reused across batches (no object per batch beyond its buffer).
  private readonly raw: RawRead = newRawRead()
  private readonly shaped: Shaped = { count: 0, runs: 0, end: 0, payloadBytes: 0, oldestTs: 0 }
  // A record larger than a frame can never be sent; a longer length field is corruption.
  private readonly rawLimits: RawReadLimits = { maxBytes: 0, maxRecords: 0, maxOffset: 0, maxRecordBytes: DEFAULT_FRAME_LIMITS.maxFrameBytes - 1024 }
  private readonly headerBytes: number
  private readonly forwardAll: boolean
  private readonly downlinkClientId = Buffer.from(DOWNLINK_CLIENT_ID)
  private readonly spare: Buffer[] = []
  private lastLagLog = 0

  constructor (private readonly deps: BridgeDeps) {
    this.s = deps.settings
    this.trustedCas = deps.trustedCas
    this.log = deps.log
    this.logger = deps.logger
    this.now = deps.now ?? Date.now
    this.filters = new TopicFilterSet(this.s.forward)
    // '#' matches every topic but those starting with '$', which only a '$...' filter can match.
    this.forwardAll = this.s.forward.includes('#') && !this.s.forward.some((f) => f.startsWith('$'))
    this.headerBytes = logBatchHeaderBytes(Buffer.byteLength(this.s.edgeId))
    this.rate = new RateCap(this.s.rateMsgsPerSec, this.s.rateBytesPerSec, this.now)
  }

  async start (): Promise<void> {
    const cp = await this.deps.meta.get(K_CHECKPOINT)
    this.acked = cp === undefined ? 0 : Number(cp.toString())
    this.savedAcked = this.acked
    const dl = await this.deps.meta.get(K_DOWNLINK_SEQ)
    this.lastDownlinkSeq = dl === undefined ? 0 : Number(dl.toString())
    // Retention keeps what the cloud has not acked (unless the disk cap forces drop-oldest).
    this.log.setReader(READER, this.acked)
    this.logger.info({ checkpoint: this.acked, urls: this.s.cloudUrls, forward: this.s.forward }, 'bridge starting')
    this.heartbeatTimer = setInterval(() => { this.onHeartbeat() }, Math.max(50, Math.min(this.s.heartbeatMs, this.s.heartbeatTimeoutMs / 3)))
    this.checkpointTimer = setInterval(() => { this.saveCheckpoint().catch(() => {}) }, this.s.checkpointIntervalMs)
    this.connect()
  }

  // ------------------------------------------------------------------ connection

  private connect (): void {
    if (this.state === 'closed') return
    const url = this.s.cloudUrls[this.urlIndex % this.s.cloudUrls.length]
    const gen = ++this.gen
    this.state = 'connecting'
    this.lastHeard = this.now()
    // A zero masking key: masking protects browsers' proxies from cache poisoning (RFC 6455
    // §10.3), which does not apply to this client; with a zero key ws skips the XOR of every
    // byte on both ends (it cost ~10% of the CPU of a backlog drain).
    const ws = new WebSocket(url, { maxPayload: DEFAULT_FRAME_LIMITS.maxFrameBytes, perMessageDeflate: false, handshakeTimeout: this.s.connectTimeoutMs, generateMask: zeroMask, ca: this.trustedCas })
    this.ws = ws
    ws.binaryType = 'nodebuffer'
    this.connectTimer = setTimeout(() => {
      if (gen === this.gen && this.state === 'connecting') this.drop(gen, 'no WELCOME within the connect timeout')
    }, this.s.connectTimeoutMs)
    ws.on('open', () => {
      if (gen !== this.gen) return
      ws.send(encodeFrame({ type: FrameType.HELLO, edgeId: this.s.edgeId, token: this.s.cloudToken ?? '', checkpoint: this.acked, lastDownlinkSeq: this.lastDownlinkSeq }))
    })
    ws.on('message', (data, isBinary) => {
      if (gen !== this.gen) return
      this.lastHeard = this.now()
      if (!isBinary) { this.drop(gen, 'text message from the cloud'); return }
      const res = decodeFrame(data as Buffer)
      if (!res.ok) { this.drop(gen, `bad frame from the cloud: ${res.error}`); return }
      this.onFrame(gen, res.frame)
    })
    ws.on('close', (code, reason) => {
      if (gen !== this.gen) return
      this.drop(gen, `closed by the cloud (${code}${reason.length > 0 ? ' ' + reason.toString() : ''})`)
    })
    ws.on('error', (err) => {
      if (gen !== this.gen) return
      this.drop(gen, err.message)
    })
  }

  // Ends connection `gen` (if current) and schedules a reconnect with backoff on the next URL.
  private drop (gen: number, why: string): void {
    if (gen !== this.gen || this.state === 'closed') return
    const wasReady = this.state === 'ready'
    this.gen++
    this.state = 'disconnected'
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer)
    if (this.rateTimer !== undefined) { clearTimeout(this.rateTimer); this.rateTimer = undefined }
    const ws = this.ws
    this.ws = undefined
    if (ws !== undefined) { ws.removeAllListeners('message'); ws.on('error', () => {}); ws.terminate() }
    this.inflight.length = 0
    this.inflightFrameBytes = 0
    this.pumping = false
    this.counters.disconnects++
    // A failed attempt (refused, timed out, refused handshake) fails over to the next URL at
    // once; the backoff applies only after every URL failed in a row (a full round), or after a
    // working link was lost (then the same URL is tried first).
    let delay = 0
    if (!wasReady) {
      this.urlIndex++
      if (++this.failedInRound >= this.s.cloudUrls.length) { this.failedInRound = 0; delay = backoffMs(this.attempt++, this.s.backoffMinMs, this.s.backoffMaxMs) }
    } else {
      this.failedInRound = 0
      delay = backoffMs(this.attempt++, this.s.backoffMinMs, this.s.backoffMaxMs)
    }
    this.logger[wasReady ? 'warn' : 'info']({ reason: why, retryInMs: delay, lagBytes: this.lagBytesFrom(this.acked) }, wasReady ? 'bridge link lost' : 'bridge connect failed')
    this.reconnectTimer = setTimeout(() => { this.reconnectTimer = undefined; this.connect() }, delay)
  }

  private onHeartbeat (): void {
    if (this.state !== 'ready' && this.state !== 'connecting') return
    const silent = this.now() - this.lastHeard
    if (silent > this.s.heartbeatTimeoutMs) {
      this.counters.heartbeatTimeouts++
      this.drop(this.gen, `no frame from the cloud for ${silent} ms (heartbeat timeout)`)
      return
    }
    if (this.state === 'ready' && this.ws !== undefined) {
      this.ws.send(encodeFrame({ type: FrameType.PING, nonce: (this.pingNonce = (this.pingNonce + 1) >>> 0) }))
    }
    this.maybeLogLag()
  }

  private onFrame (gen: number, frame: BridgeFrame): void {
    switch (frame.type) {
      case FrameType.WELCOME: {
        if (this.state !== 'connecting') { this.drop(gen, 'unexpected WELCOME'); return }
        if (this.connectTimer !== undefined) clearTimeout(this.connectTimer)
        this.state = 'ready'
        this.attempt = 0
        this.failedInRound = 0
        this.counters.connects++
        const committed = frame.committedOffset
        if (committed > this.log.endOffset) {
          // The cloud holds more of this edge than its log: the edge lost its data directory. New
          // records would reuse offsets the cloud already has and be skipped as duplicates.
          this.logger.error({ committed, endOffset: this.log.endOffset }, 'the cloud is ahead of this edge\'s log (edge data lost?): records below the cloud\'s offset will be ignored by the cloud')
        }
        this.setAcked(committed)
        this.readPos = committed
        if (committed < this.log.startOffset) {
          this.counters.truncatedBytes += this.log.startOffset - committed
          this.logger.warn({ committed, startOffset: this.log.startOffset, bytes: this.log.startOffset - committed }, 'records the cloud never received were deleted by retention (disk cap): dropped')
          this.readPos = this.log.startOffset
        }
        this.logger.info({ url: this.s.cloudUrls[this.urlIndex % this.s.cloudUrls.length], committed, lagBytes: this.lagBytesFrom(committed) }, 'bridge connected')
        this.pump()
        return
      }
      case FrameType.REFUSE:
        this.counters.refused++
        this.logger.error({ code: frame.code === RefuseCode.AUTH ? 'TRIB_ERR_BRIDGE_AUTH' : 'TRIB_ERR_BRIDGE_FRAME', reason: frame.reason }, 'the cloud refused this edge')
        this.drop(gen, `refused: ${frame.reason}`)
        return
      case FrameType.ACK: this.onAck(frame.committedOffset); return
      case FrameType.DOWNLINK: this.onDownlink(gen, frame); return
      case FrameType.PING: this.ws?.send(encodeFrame({ type: FrameType.PONG, nonce: frame.nonce })); return
      case FrameType.PONG: return
      case FrameType.ERROR:
        this.logger.error({ code: frame.code, err: frame.message }, 'the cloud reported an error on the bridge')
        return
      default:
        this.drop(gen, `unexpected ${frameTypeName(frame.type)} from the cloud`)
    }
  }

  // ------------------------------------------------------------------ replication

  private setAcked (offset: number): void {
    if (offset === this.acked) return
    this.acked = offset
    this.checkpointDirty = true
    this.log.setReader(READER, offset)
  }

  private onAck (committed: number): void {
    const inflight = this.inflight
    let popped = 0
    while (popped < inflight.length && inflight[popped].toOffset <= committed) this.inflightFrameBytes -= inflight[popped++].frameBytes
    if (popped > 0) inflight.splice(0, popped)
    this.counters.acks++
    if (committed > this.acked) this.setAcked(committed)
    this.pump()
  }

  private pump (): void {
    if (this.state !== 'ready' || this.pumping) return
    this.pumping = true
    try {
      this.pumpLoop()
    } finally {
      this.pumping = false
    }
  }

  private pumpLoop (): void {
    const gen = this.gen
    const ws = this.ws!
    const windowMaxBatches = this.s.windowBatches * SMALL_BATCHES_PER_SLOT
    const windowMaxBytes = this.s.windowBatches * this.s.batchMaxBytes
    while (this.inflight.length < windowMaxBatches && this.inflightFrameBytes < windowMaxBytes && this.state === 'ready') {
      const delay = this.rate.delayMs()
      if (delay > 0) {
        if (this.rateTimer === undefined) this.rateTimer = setTimeout(() => { this.rateTimer = undefined; if (gen === this.gen) this.pump() }, delay)
        return
      }
      const limit = this.log.replicableOffset
      if (this.readPos >= limit) {
        this.waitForMore(gen)
        return
      }
      const [maxRecords, maxBytes] = this.rate.budget(this.s.batchMaxRecords, this.s.batchMaxBytes)
      // The log's bytes are read straight into the frame, behind room for its header and the
      // first run's header; the buffer is as large as what can be read (small on a live link).
      const front = this.headerBytes + LOG_BATCH_RUN_HEADER_BYTES
      // At least MIN_READ_BYTES, so a rate cap's tiny byte budget still reads a frame's length.
      let room = Math.min(Math.max(maxBytes, MIN_READ_BYTES), limit - this.readPos)
      let buf = room === this.s.batchMaxBytes && this.spare.length > 0 ? this.spare.pop()! : Buffer.allocUnsafe(front + room)
      const limits = this.rawLimits
      limits.maxBytes = room; limits.maxRecords = maxRecords; limits.maxOffset = limit
      let r = readRaw(this.log, this.readPos, buf, front, limits, this.raw)
      while (r.status === 'short') {
        // The first record is larger than the budget: read exactly it (progress guaranteed: the
        // room grows to the frame's length, which readRaw knows once it has its first 8 bytes).
        room = limits.maxBytes = r.needBytes
        buf = Buffer.allocUnsafe(front + room)
        r = readRaw(this.log, this.readPos, buf, front, limits, this.raw)
      }
      if (r.status === 'truncated') {
        this.counters.truncatedBytes += r.nextOffset - this.readPos
        this.logger.warn({ from: this.readPos, to: r.nextOffset, bytes: r.nextOffset - this.readPos }, 'records not yet replicated were deleted by retention (disk cap): dropped')
        this.readPos = r.nextOffset
        continue
      }
      if (r.status !== 'ok') { this.waitForMore(gen); return }
      const from = this.readPos
      const to = r.nextOffset
      const shaped = this.shapeBatch(buf, r)
      writeLogBatchHeader(buf, this.s.edgeId, this.headerBytes - logBatchHeaderBytes(0), from, to, shaped.count, shaped.runs)
      const frame = shaped.end === buf.length ? buf : buf.subarray(0, shaped.end)
      if (buf.length === front + this.s.batchMaxBytes) {
        // Full-size buffers are reused once ws has handed them to the socket (a fresh 1 MiB per
        // batch cost page faults and GC work on every batch of a backlog drain).
        const full = buf
        ws.send(frame, () => { if (this.spare.length < MAX_SPARE_FRAMES) this.spare.push(full) })
      } else {
        ws.send(frame)
      }
      if (r.records > 0) this.avgRecordBytes = this.avgRecordBytes * 0.9 + ((to - from) / r.records) * 0.1
      const n = shaped.count
      this.inflight.push({ toOffset: to, records: n, bytes: shaped.payloadBytes, oldestTs: shaped.oldestTs, frameBytes: frame.length })
      this.inflightFrameBytes += frame.length
      this.rate.consume(n, shaped.payloadBytes)
      this.counters.batchesSent++
      this.counters.recordsSent += n
      this.counters.bytesSent += shaped.payloadBytes
      this.readPos = to
    }
  }

  // Drops the records that are not sent (downlinks, topics outside `forward`) by moving the kept
  // ones down over them, in place; each stretch of kept records after a gap gets a run header
  // (it fits: a dropped record is longer than a run header). Nothing moves when all are kept.
  private shapeBatch (buf: Buffer, r: RawRead): Shaped {
    const out = this.shaped
    out.count = 0; out.runs = 0; out.payloadBytes = 0; out.oldestTs = 0
    let w = r.start - LOG_BATCH_RUN_HEADER_BYTES // where the next run header goes
    let runHdr = -1
    let runOffset = -1
    for (let p = r.start; p < r.end;) {
      const len = rawFrameLength(buf, p)
      if (this.sends(buf, p)) {
        if (runOffset === -1) { runHdr = w; w += LOG_BATCH_RUN_HEADER_BYTES; runOffset = r.firstOffset + (p - r.start) }
        if (p !== w) buf.copyWithin(w, p, p + len)
        w += len
        if (out.count++ === 0) out.oldestTs = rawTimestamp(buf, w - len)
        out.payloadBytes += buf.readUInt32LE(w - len + 25)
      } else if (runOffset !== -1) {
        writeLogBatchRun(buf, runHdr, runOffset, w - runHdr - LOG_BATCH_RUN_HEADER_BYTES)
        out.runs++
        runOffset = -1
      }
      p += len
    }
    if (runOffset !== -1) { writeLogBatchRun(buf, runHdr, runOffset, w - runHdr - LOG_BATCH_RUN_HEADER_BYTES); out.runs++ }
    out.end = out.runs === 0 ? this.headerBytes : w
    return out
  }

  // Whether the record at `p` goes to the cloud: not a downlink (those came from the cloud), and
  // its topic matches `forward` (with '#' among them no topic string is made).
  private sends (buf: Buffer, p: number): boolean {
    const dl = this.downlinkClientId
    const tLen = rawTopicLength(buf, p)
    if (rawClientIdLength(buf, p) === dl.length) {
      const c = rawTopicStart(p) + tLen
      if (buf.compare(dl, 0, dl.length, c, c + dl.length) === 0) return false
    }
    const t = rawTopicStart(p)
    // [MQTT-4.7.2-1] '#' does not match topics starting with '$' (as TopicFilterSet decides).
    if (this.forwardAll) return tLen === 0 || buf[t] !== 0x24
    return this.filters.matches(buf.toString('utf8', t, t + tLen))
  }

  // Nothing sendable from readPos: wait until the log says more is (written, or for a window of
  // 0 durable: the log then starts an fsync itself, whatever the flush policy).
  private waitForMore (gen: number): void {
    if (this.waiting) return
    this.waiting = true
    const wake = (): void => { this.waiting = false; if (gen === this.gen) this.pump() }
    const fail = (err: Error): void => {
      this.waiting = false
      if (this.state !== 'closed') this.logger.error({ err }, 'bridge cannot read the commitlog')
    }
    this.log.waitForReplicable(this.readPos).then(wake, fail)
  }

  // ------------------------------------------------------------------ downlink

  private onDownlink (gen: number, d: DownlinkFrame): void {
    const ack = (): void => { if (gen === this.gen) this.ws?.send(encodeFrame({ type: FrameType.DOWNLINK_ACK, seq: d.seq })) }
    if (d.seq <= this.lastDownlinkSeq) { this.counters.downlinksDuplicate++; ack(); return }
    if (d.expiresAtMs !== 0 && d.expiresAtMs <= this.now()) {
      this.counters.downlinksExpired++
      this.logger.warn({ seq: d.seq, topic: d.topic }, 'downlink expired before it reached the edge: dropped')
      this.markDownlink(d.seq)
      ack()
      return
    }
    // Copy: the payload is a view into the WebSocket message.
    const payload = Buffer.from(d.payload)
    let appended: AppendResult
    try {
      appended = this.log.append({ topic: d.topic, payload, qos: d.qos, retain: d.retain, clientId: DOWNLINK_CLIENT_ID }, (err) => {
        if (err !== null) { this.logger.error({ err, seq: d.seq }, 'downlink not stored in the commitlog: not acked'); return }
        this.deps.publishLocal({ topic: d.topic, payload, qos: d.qos, retain: d.retain }, appended, () => {
          this.counters.downlinksApplied++
          this.markDownlink(d.seq)
          ack()
        })
      })
    } catch (err) {
      this.logger.error({ err, seq: d.seq }, 'downlink refused by the commitlog: not acked')
    }
  }

  private markDownlink (seq: number): void {
    if (seq > this.lastDownlinkSeq) { this.lastDownlinkSeq = seq; this.downlinkSeqDirty = true }
  }

  // ------------------------------------------------------------------ checkpoint, lag, close

  private async saveCheckpoint (): Promise<void> {
    const ops: Array<{ type: 'put', key: string, value: Buffer }> = []
    if (this.checkpointDirty && this.acked !== this.savedAcked) ops.push({ type: 'put', key: K_CHECKPOINT, value: Buffer.from(String(this.acked)) })
    // The applied downlink seq: losing it after a crash only means a downlink is applied twice.
    if (this.downlinkSeqDirty) ops.push({ type: 'put', key: K_DOWNLINK_SEQ, value: Buffer.from(String(this.lastDownlinkSeq)) })
    if (ops.length === 0) return
    const acked = this.acked
    this.checkpointDirty = false
    this.downlinkSeqDirty = false
    try {
      await this.deps.meta.batch(ops)
      this.savedAcked = acked
    } catch (err) {
      this.checkpointDirty = true
      this.downlinkSeqDirty = true
      this.logger.warn({ err }, 'bridge checkpoint not saved (will retry)')
    }
  }

  // Edge log offset up to which the cloud holds everything (cheap: no log read, unlike status()).
  get ackedOffset (): number { return this.acked }

  status (): BridgeStatus {
    const lagBytes = this.lagBytesFrom(this.acked)
    let inflightRecords = 0
    for (const f of this.inflight) inflightRecords += f.records
    const unsent = this.lagBytesFrom(Math.max(this.readPos, this.acked))
    let oldestAge = 0
    if (lagBytes > 0) {
      const b = this.log.read(Math.max(this.acked, this.log.startOffset), { maxRecords: 1 })
      if (b.records.length > 0) oldestAge = Math.max(0, this.now() - b.records[0].timestampMs)
    }
    return {
      state: this.state,
      url: this.state === 'ready' ? this.s.cloudUrls[this.urlIndex % this.s.cloudUrls.length] : undefined,
      ackedOffset: this.acked,
      lagBytes,
      // Messages not yet acked: exact for those in flight, estimated (bytes / mean record size)
      // for those not yet read; counting them exactly would mean scanning the backlog.
      lagMessages: inflightRecords + Math.round(unsent / this.avgRecordBytes),
      oldestUnackedAgeMs: oldestAge,
      inflightBatches: this.inflight.length
    }
  }

  // Log bytes from `from` to the end, offset gaps (after a dirty restart of the edge) left out.
  private lagBytesFrom (from: number): number {
    const end = this.log.endOffset
    return Math.max(0, end - from - this.log.gapBytesIn(from, end))
  }

  droppedRecords (): number {
    return this.log.stats().droppedRecords
  }

  private maybeLogLag (): void {
    const t = this.now()
    // Lag in the log: at most every 30 s, and only when there is a backlog worth mentioning.
    if (t - this.lastLagLog < 30_000) return
    const st = this.status()
    if (st.oldestUnackedAgeMs < 5_000) return
    this.lastLagLog = t
    this.logger.info({ lagMessages: st.lagMessages, lagBytes: st.lagBytes, oldestUnackedAgeMs: st.oldestUnackedAgeMs, state: st.state }, 'bridge lag')
  }

  async close (): Promise<void> {
    if (this.state === 'closed') return
    this.gen++
    this.state = 'closed'
    for (const t of [this.heartbeatTimer, this.checkpointTimer]) if (t !== undefined) clearInterval(t)
    for (const t of [this.reconnectTimer, this.rateTimer, this.connectTimer]) if (t !== undefined) clearTimeout(t)
    const ws = this.ws
    this.ws = undefined
    if (ws !== undefined) {
      ws.removeAllListeners()
      ws.on('error', () => {})
      if (ws.readyState === ws.OPEN) ws.close(1001, 'edge shutting down')
      else ws.terminate()
    }
    this.checkpointDirty = true
    await this.saveCheckpoint()
    this.logger.info({ checkpoint: this.acked }, 'bridge stopped')
  }
}
