// The bridge wire protocol: one frame per WebSocket binary message. Pure codec, no I/O.
// Byte layout (all integers big-endian; "u53" = 8 bytes, hi u32 + lo u32, value < 2^53):
//
//   frame   = magic 0x54 0x42 ("TB") | version u8 | type u8 | body
//   str     = length u16 | UTF-8 bytes
//   bytes   = length u32 | bytes
//
//   HELLO        edgeId str | token str | checkpoint u53 | lastDownlinkSeq u53
//   WELCOME      committedOffset u53 | heartbeatMs u32 | maxFrameBytes u32
//   REFUSE       code u8 (RefuseCode) | reason str
//   BATCH        edgeId str | fromOffset u53 | toOffset u53 | count u32 | record*count
//     record     offset u53 | nextOffset u53 | timestampMs u53 | qos u8 | flags u8 (bit0 retain) | topic str | payload bytes
//   ACK          committedOffset u53
//   DOWNLINK     seq u53 | expiresAtMs u53 (0 = never) | qos u8 | flags u8 | topic str | payload bytes
//   DOWNLINK_ACK seq u53
//   PING / PONG  nonce u32
//   ERROR        code str (a TRIB_ERR_* code) | message str
//   LOG_BATCH    edgeId str | fromOffset u53 | toOffset u53 | count u32 | runCount u32 | run*runCount
//     run        offset u53 | bytes u32 | `bytes` of edge commitlog records, framed exactly as in the
//                edge's segment files (src/commitlog/format.ts: little endian, magic, length, CRC,
//                timestamp, flags, topic, client id, payload), contiguous in the edge log: the first
//                is at `offset`, each next one at the previous one's offset + its length
//
// LOG_BATCH is what the edge sends: the bytes of its log as read from the segment file, without
// decoding them (src/commitlog/raw-read.ts checks their CRCs on the way). BATCH stays for
// records built as objects (tests, other senders) and for the cloud store's older chunks.
// `fromOffset`/`toOffset` of a BATCH (and a LOG_BATCH) are the edge log positions the batch covers: records the
// edge filtered out (not forwarded) lie between them, so the cloud can ack `toOffset` and the
// edge resumes past them. Decoding never throws: bad input is a `{ ok: false }` value.

export const BRIDGE_PROTOCOL_VERSION = 1
const MAGIC0 = 0x54
const MAGIC1 = 0x42
const HEADER_BYTES = 4
const TWO_32 = 0x1_0000_0000

export const FrameType = {
  HELLO: 1,
  WELCOME: 2,
  REFUSE: 3,
  BATCH: 4,
  ACK: 5,
  DOWNLINK: 6,
  DOWNLINK_ACK: 7,
  PING: 8,
  PONG: 9,
  ERROR: 10,
  LOG_BATCH: 11
} as const

export const RefuseCode = {
  AUTH: 1, // unknown edge id or wrong token
  VERSION: 2, // protocol version not supported
  BUSY: 3, // the node will not take this edge now (another connection holds it, shutting down)
  FENCED: 4 // another cloud node holds this edge's lease
} as const
export type RefuseCodeValue = typeof RefuseCode[keyof typeof RefuseCode]

export type QoSLevel = 0 | 1 | 2

export interface BridgeRecord {
  offset: number
  nextOffset: number
  timestampMs: number
  qos: QoSLevel
  retain: boolean
  topic: string
  payload: Buffer
}

export interface HelloFrame { type: typeof FrameType.HELLO, edgeId: string, token: string, checkpoint: number, lastDownlinkSeq: number }
export interface WelcomeFrame { type: typeof FrameType.WELCOME, committedOffset: number, heartbeatMs: number, maxFrameBytes: number }
export interface RefuseFrame { type: typeof FrameType.REFUSE, code: RefuseCodeValue, reason: string }
export interface BatchFrame { type: typeof FrameType.BATCH, edgeId: string, fromOffset: number, toOffset: number, records: BridgeRecord[] }
export interface AckFrame { type: typeof FrameType.ACK, committedOffset: number }
export interface DownlinkFrame { type: typeof FrameType.DOWNLINK, seq: number, expiresAtMs: number, qos: QoSLevel, retain: boolean, topic: string, payload: Buffer }
export interface DownlinkAckFrame { type: typeof FrameType.DOWNLINK_ACK, seq: number }
export interface PingFrame { type: typeof FrameType.PING, nonce: number }
export interface PongFrame { type: typeof FrameType.PONG, nonce: number }
export interface ErrorFrame { type: typeof FrameType.ERROR, code: string, message: string }

export type BridgeFrame = HelloFrame | WelcomeFrame | RefuseFrame | BatchFrame | AckFrame | DownlinkFrame | DownlinkAckFrame | PingFrame | PongFrame | ErrorFrame

export interface FrameLimits {
  // Whole frame. Bounds the memory one message costs the receiver (ws maxPayload is set to it too).
  maxFrameBytes: number
  // Records in one BATCH: bounds the per-batch work and the array the decoder allocates.
  maxRecordsPerBatch: number
  // Topic bytes, as the MQTT limit at the edge (a topic longer than the edge accepts is a bug).
  maxTopicBytes: number
  // Short strings: edge id, token, error texts.
  maxStringBytes: number
}

export const DEFAULT_FRAME_LIMITS: Readonly<FrameLimits> = Object.freeze({
  // 16 MiB: a batch of ~1 MiB records still fits; larger would hold too much RAM per edge at the cloud.
  maxFrameBytes: 16 * 1024 * 1024,
  // 65536: a 16 MiB frame of 100 B messages holds ~100k records; cap the array work per frame.
  maxRecordsPerBatch: 65_536,
  maxTopicBytes: 65_535,
  maxStringBytes: 1024
})

export type DecodeResult = { ok: true, frame: BridgeFrame } | { ok: false, error: string }

// Per-record fixed bytes: offset, nextOffset, timestamp (3 x 8), qos, flags, topic len u16, payload len u32.
const RECORD_FIXED_BYTES = 8 * 3 + 1 + 1 + 2 + 4

function writeU53 (buf: Buffer, value: number, at: number): number {
  const hi = Math.floor(value / TWO_32)
  buf.writeUInt32BE(hi, at)
  buf.writeUInt32BE(value - hi * TWO_32, at + 4)
  return at + 8
}

function writeStr (buf: Buffer, s: string, byteLen: number, at: number): number {
  buf.writeUInt16BE(byteLen, at)
  buf.write(s, at + 2, byteLen, 'utf8')
  return at + 2 + byteLen
}

function writeBytes (buf: Buffer, b: Buffer, at: number): number {
  buf.writeUInt32BE(b.length, at)
  b.copy(buf, at + 4)
  return at + 4 + b.length
}

function header (size: number, type: number): Buffer {
  const buf = Buffer.allocUnsafe(size)
  buf[0] = MAGIC0
  buf[1] = MAGIC1
  buf[2] = BRIDGE_PROTOCOL_VERSION
  buf[3] = type
  return buf
}

function checkU53 (name: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${name} must be a non-negative safe integer, got ${n}`)
}

function checkStrLen (name: string, len: number): void {
  if (len > 0xffff) throw new RangeError(`${name} is ${len} bytes, longer than 65535`)
}

// Encoding is for our own well-formed values: it throws RangeError on a programming error
// (negative offset, oversized string), which is a broken invariant, not an expected outcome.
export function encodeFrame (frame: BridgeFrame): Buffer {
  switch (frame.type) {
    case FrameType.HELLO: {
      const idLen = Buffer.byteLength(frame.edgeId)
      const tokLen = Buffer.byteLength(frame.token)
      checkStrLen('edgeId', idLen); checkStrLen('token', tokLen)
      checkU53('checkpoint', frame.checkpoint); checkU53('lastDownlinkSeq', frame.lastDownlinkSeq)
      const buf = header(HEADER_BYTES + 2 + idLen + 2 + tokLen + 16, frame.type)
      let at = writeStr(buf, frame.edgeId, idLen, HEADER_BYTES)
      at = writeStr(buf, frame.token, tokLen, at)
      at = writeU53(buf, frame.checkpoint, at)
      writeU53(buf, frame.lastDownlinkSeq, at)
      return buf
    }
    case FrameType.WELCOME: {
      checkU53('committedOffset', frame.committedOffset)
      const buf = header(HEADER_BYTES + 16, frame.type)
      const at = writeU53(buf, frame.committedOffset, HEADER_BYTES)
      buf.writeUInt32BE(frame.heartbeatMs, at)
      buf.writeUInt32BE(frame.maxFrameBytes, at + 4)
      return buf
    }
    case FrameType.REFUSE: {
      const len = Buffer.byteLength(frame.reason)
      checkStrLen('reason', len)
      const buf = header(HEADER_BYTES + 1 + 2 + len, frame.type)
      buf[HEADER_BYTES] = frame.code
      writeStr(buf, frame.reason, len, HEADER_BYTES + 1)
      return buf
    }
    case FrameType.BATCH:
      return encodeBatch(frame.edgeId, frame.fromOffset, frame.toOffset, frame.records, frame.records.length)
    case FrameType.ACK:
    case FrameType.DOWNLINK_ACK: {
      const v = frame.type === FrameType.ACK ? frame.committedOffset : frame.seq
      checkU53('offset', v)
      const buf = header(HEADER_BYTES + 8, frame.type)
      writeU53(buf, v, HEADER_BYTES)
      return buf
    }
    case FrameType.DOWNLINK: {
      const tLen = Buffer.byteLength(frame.topic)
      checkStrLen('topic', tLen)
      checkU53('seq', frame.seq); checkU53('expiresAtMs', frame.expiresAtMs)
      const buf = header(HEADER_BYTES + 16 + 2 + 2 + tLen + 4 + frame.payload.length, frame.type)
      let at = writeU53(buf, frame.seq, HEADER_BYTES)
      at = writeU53(buf, frame.expiresAtMs, at)
      buf[at++] = frame.qos
      buf[at++] = frame.retain ? 1 : 0
      at = writeStr(buf, frame.topic, tLen, at)
      writeBytes(buf, frame.payload, at)
      return buf
    }
    case FrameType.PING:
    case FrameType.PONG: {
      const buf = header(HEADER_BYTES + 4, frame.type)
      buf.writeUInt32BE(frame.nonce >>> 0, HEADER_BYTES)
      return buf
    }
    case FrameType.ERROR: {
      const cLen = Buffer.byteLength(frame.code)
      const mLen = Buffer.byteLength(frame.message)
      checkStrLen('code', cLen); checkStrLen('message', mLen)
      const buf = header(HEADER_BYTES + 4 + cLen + mLen, frame.type)
      writeStr(buf, frame.message, mLen, writeStr(buf, frame.code, cLen, HEADER_BYTES))
      return buf
    }
  }
}

// The hot path: one buffer, sized up front, for the `count` records of `records` starting at
// index `first` (the caller may reuse a larger array, or encode a slice of one without copying
// it). Topic byte lengths are measured once.
export function encodeBatch (edgeId: string, fromOffset: number, toOffset: number, records: readonly BridgeRecord[], count: number, first = 0): Buffer {
  const idLen = Buffer.byteLength(edgeId)
  checkStrLen('edgeId', idLen)
  checkU53('fromOffset', fromOffset); checkU53('toOffset', toOffset)
  const end = first + count
  let size = HEADER_BYTES + 2 + idLen + 16 + 4
  for (let i = first; i < end; i++) {
    const r = records[i]
    size += RECORD_FIXED_BYTES + Buffer.byteLength(r.topic) + r.payload.length
  }
  const buf = header(size, FrameType.BATCH)
  let at = writeStr(buf, edgeId, idLen, HEADER_BYTES)
  at = writeU53(buf, fromOffset, at)
  at = writeU53(buf, toOffset, at)
  buf.writeUInt32BE(count, at); at += 4
  for (let i = first; i < end; i++) {
    const r = records[i]
    at = writeU53(buf, r.offset, at)
    at = writeU53(buf, r.nextOffset, at)
    at = writeU53(buf, r.timestampMs, at)
    buf[at++] = r.qos
    buf[at++] = r.retain ? 1 : 0
    const tLen = buf.write(r.topic, at + 2, 'utf8')
    checkStrLen('topic', tLen)
    buf.writeUInt16BE(tLen, at)
    at += 2 + tLen
    at = writeBytes(buf, r.payload, at)
  }
  return buf
}

// Byte size `encodeBatch` would produce for one more record: lets the batcher stop before a limit.
export function batchRecordBytes (topicBytes: number, payloadBytes: number): number {
  return RECORD_FIXED_BYTES + topicBytes + payloadBytes
}
export function batchOverheadBytes (edgeId: string): number {
  return HEADER_BYTES + 2 + Buffer.byteLength(edgeId) + 16 + 4
}

export interface BatchHeader { type: number, edgeId: string, fromOffset: number, toOffset: number, count: number, recordsAt: number }

// The header of a BATCH or LOG_BATCH frame without decoding its records (the cloud store's
// recovery scan needs only the range). Undefined when `buf` does not start like one. For a
// LOG_BATCH, `recordsAt` is the position of its run count.
export function decodeBatchHeader (buf: Buffer, limits: FrameLimits = DEFAULT_FRAME_LIMITS): BatchHeader | undefined {
  if (buf.length < HEADER_BYTES || buf[0] !== MAGIC0 || buf[1] !== MAGIC1 || buf[2] !== BRIDGE_PROTOCOL_VERSION || (buf[3] !== FrameType.BATCH && buf[3] !== FrameType.LOG_BATCH)) return undefined
  const r = new Reader(buf)
  const edgeId = r.str('edgeId', limits.maxStringBytes)
  const fromOffset = r.u53('fromOffset')
  const toOffset = r.u53('toOffset')
  const count = r.u32('count')
  return r.error === undefined ? { type: buf[3], edgeId, fromOffset, toOffset, count, recordsAt: r.at } : undefined
}

// A cursor over one frame; every read checks the bounds and fails by setting `error`.
class Reader {
  at = HEADER_BYTES
  error: string | undefined
  constructor (readonly buf: Buffer) {}

  fail (msg: string): void { if (this.error === undefined) this.error = msg }

  need (n: number, what: string): boolean {
    if (this.error !== undefined) return false
    if (this.at + n > this.buf.length) { this.fail(`truncated frame reading ${what}`); return false }
    return true
  }

  u8 (what: string): number {
    if (!this.need(1, what)) return 0
    return this.buf[this.at++]
  }

  u32 (what: string): number {
    if (!this.need(4, what)) return 0
    const v = this.buf.readUInt32BE(this.at)
    this.at += 4
    return v
  }

  u53 (what: string): number {
    if (!this.need(8, what)) return 0
    const hi = this.buf.readUInt32BE(this.at)
    const lo = this.buf.readUInt32BE(this.at + 4)
    this.at += 8
    if (hi >= 0x20_0000) { this.fail(`${what} exceeds 2^53`); return 0 }
    return hi * TWO_32 + lo
  }

  str (what: string, max: number): string {
    if (!this.need(2, what)) return ''
    const len = this.buf.readUInt16BE(this.at)
    this.at += 2
    if (len > max) { this.fail(`${what} is ${len} bytes, over the limit of ${max}`); return '' }
    if (!this.need(len, what)) return ''
    const s = this.buf.toString('utf8', this.at, this.at + len)
    this.at += len
    return s
  }

  bytes (what: string): Buffer {
    const len = this.u32(what)
    if (!this.need(len, what)) return EMPTY
    const b = this.buf.subarray(this.at, this.at + len)
    this.at += len
    return b
  }

  qos (what: string): QoSLevel {
    const q = this.u8(what)
    if (q > 2) { this.fail(`${what} ${q} is not 0, 1 or 2`); return 0 }
    return q as QoSLevel
  }

  flags (what: string): boolean {
    const f = this.u8(what)
    if (f > 1) { this.fail(`${what} has unknown bits ${f}`); return false }
    return f === 1
  }
}
const EMPTY = Buffer.alloc(0)

function isRefuseCode (n: number): n is RefuseCodeValue {
  return n >= 1 && n <= 4
}

// Strict: unknown type, wrong version, trailing bytes, lengths beyond the limits, offsets out
// of order are all `{ ok: false, error }`. Payloads are views into `buf` (no copy).
export function decodeFrame (buf: Buffer, limits: FrameLimits = DEFAULT_FRAME_LIMITS): DecodeResult {
  if (buf.length > limits.maxFrameBytes) return { ok: false, error: `frame of ${buf.length} bytes exceeds the limit of ${limits.maxFrameBytes}` }
  if (buf.length < HEADER_BYTES) return { ok: false, error: 'frame shorter than its header' }
  if (buf[0] !== MAGIC0 || buf[1] !== MAGIC1) return { ok: false, error: 'not a bridge frame (bad magic)' }
  if (buf[2] !== BRIDGE_PROTOCOL_VERSION) return { ok: false, error: `unsupported protocol version ${buf[2]}` }
  const r = new Reader(buf)
  const s = limits.maxStringBytes
  let frame: BridgeFrame
  switch (buf[3]) {
    case FrameType.HELLO:
      frame = { type: FrameType.HELLO, edgeId: r.str('edgeId', s), token: r.str('token', s), checkpoint: r.u53('checkpoint'), lastDownlinkSeq: r.u53('lastDownlinkSeq') }
      break
    case FrameType.WELCOME:
      frame = { type: FrameType.WELCOME, committedOffset: r.u53('committedOffset'), heartbeatMs: r.u32('heartbeatMs'), maxFrameBytes: r.u32('maxFrameBytes') }
      break
    case FrameType.REFUSE: {
      const code = r.u8('code')
      if (!isRefuseCode(code)) r.fail(`unknown refuse code ${code}`)
      frame = { type: FrameType.REFUSE, code: code as RefuseCodeValue, reason: r.str('reason', s) }
      break
    }
    case FrameType.BATCH: {
      const decoded = decodeBatchBody(r, limits)
      if (decoded === undefined) return { ok: false, error: r.error ?? 'bad batch' }
      frame = decoded
      break
    }
    case FrameType.LOG_BATCH:
      return scanLogBatchFrame(buf, limits)
    case FrameType.ACK:
      frame = { type: FrameType.ACK, committedOffset: r.u53('committedOffset') }
      break
    case FrameType.DOWNLINK: {
      const seq = r.u53('seq')
      const expiresAtMs = r.u53('expiresAtMs')
      const qos = r.qos('qos')
      const retain = r.flags('flags')
      frame = { type: FrameType.DOWNLINK, seq, expiresAtMs, qos, retain, topic: r.str('topic', limits.maxTopicBytes), payload: r.bytes('payload') }
      break
    }
    case FrameType.DOWNLINK_ACK:
      frame = { type: FrameType.DOWNLINK_ACK, seq: r.u53('seq') }
      break
    case FrameType.PING:
      frame = { type: FrameType.PING, nonce: r.u32('nonce') }
      break
    case FrameType.PONG:
      frame = { type: FrameType.PONG, nonce: r.u32('nonce') }
      break
    case FrameType.ERROR:
      frame = { type: FrameType.ERROR, code: r.str('code', s), message: r.str('message', s) }
      break
    default:
      return { ok: false, error: `unknown frame type ${buf[3]}` }
  }
  if (r.error !== undefined) return { ok: false, error: r.error }
  if (r.at !== buf.length) return { ok: false, error: `${buf.length - r.at} trailing bytes after frame` }
  return { ok: true, frame }
}

function decodeBatchBody (r: Reader, limits: FrameLimits): BatchFrame | undefined {
  const edgeId = r.str('edgeId', limits.maxStringBytes)
  const fromOffset = r.u53('fromOffset')
  const toOffset = r.u53('toOffset')
  const count = r.u32('count')
  if (r.error !== undefined) return undefined
  if (toOffset < fromOffset) { r.fail(`batch toOffset ${toOffset} is before fromOffset ${fromOffset}`); return undefined }
  if (count > limits.maxRecordsPerBatch) { r.fail(`batch of ${count} records exceeds the limit of ${limits.maxRecordsPerBatch}`); return undefined }
  // Each record needs at least RECORD_FIXED_BYTES: a lying count cannot make us allocate much.
  if (count * RECORD_FIXED_BYTES > r.buf.length - r.at) { r.fail(`batch count ${count} does not fit the frame`); return undefined }
  const records: BridgeRecord[] = new Array(count)
  let prev = fromOffset
  for (let i = 0; i < count; i++) {
    const offset = r.u53('record offset')
    const nextOffset = r.u53('record nextOffset')
    const timestampMs = r.u53('record timestamp')
    const qos = r.qos('record qos')
    const retain = r.flags('record flags')
    const topic = r.str('record topic', limits.maxTopicBytes)
    const payload = r.bytes('record payload')
    if (r.error !== undefined) return undefined
    // Records travel in log order inside [fromOffset, toOffset]; anything else is out of protocol.
    if (offset < prev || nextOffset <= offset || nextOffset > toOffset) {
      r.fail(`record ${i} offsets [${offset}, ${nextOffset}) out of order in batch [${fromOffset}, ${toOffset})`)
      return undefined
    }
    prev = nextOffset
    records[i] = { offset, nextOffset, timestampMs, qos, retain, topic, payload }
  }
  return { type: FrameType.BATCH, edgeId, fromOffset, toOffset, records }
}

// ---------------------------------------------------------------- BATCH without record objects
// The cloud's hot path: a BATCH is validated exactly as decodeFrame does, but no object is built
// per record; the embedded store copies record bytes as they are. `records` decodes on first use
// (stores that need objects, replayed batches).

export interface ScannedBatch {
  buf: Buffer // the whole frame
  recordsAt: number // byte position of the first record
  count: number
  firstOffset: number // edge offset of the first record (toOffset when there is none)
  payloadBytes: number
}

export class LazyBatchFrame implements BatchFrame {
  readonly type = FrameType.BATCH
  private decoded: BridgeRecord[] | undefined
  constructor (readonly edgeId: string, readonly fromOffset: number, readonly toOffset: number, readonly raw: ScannedBatch, private readonly limits: FrameLimits) {}

  get records (): BridgeRecord[] {
    if (this.decoded === undefined) {
      const res = decodeFrame(this.raw.buf, this.limits)
      // scanBatchFrame accepted these bytes, so decodeFrame does too.
      this.decoded = res.ok && res.frame.type === FrameType.BATCH ? res.frame.records : []
    }
    return this.decoded
  }
}

// Like decodeFrame for a BATCH frame (same checks, same errors), without per-record objects.
// The checks every batch frame starts with (size, magic, version, type, the range, the count).
interface BatchStart { error: string | undefined, r: Reader, edgeId: string, fromOffset: number, toOffset: number, count: number }
function scanBatchStart (buf: Buffer, limits: FrameLimits, type: number, typeName: string): BatchStart {
  const r = new Reader(buf)
  const out: BatchStart = { error: undefined, r, edgeId: '', fromOffset: 0, toOffset: 0, count: 0 }
  if (buf.length > limits.maxFrameBytes) out.error = `frame of ${buf.length} bytes exceeds the limit of ${limits.maxFrameBytes}`
  else if (buf.length < HEADER_BYTES) out.error = 'frame shorter than its header'
  else if (buf[0] !== MAGIC0 || buf[1] !== MAGIC1) out.error = 'not a bridge frame (bad magic)'
  else if (buf[2] !== BRIDGE_PROTOCOL_VERSION) out.error = `unsupported protocol version ${buf[2]}`
  else if (buf[3] !== type) out.error = `frame type ${buf[3]} is not ${typeName}`
  if (out.error !== undefined) return out
  out.edgeId = r.str('edgeId', limits.maxStringBytes)
  out.fromOffset = r.u53('fromOffset')
  out.toOffset = r.u53('toOffset')
  out.count = r.u32('count')
  if (r.error !== undefined) out.error = r.error
  else if (out.toOffset < out.fromOffset) out.error = `batch toOffset ${out.toOffset} is before fromOffset ${out.fromOffset}`
  else if (out.count > limits.maxRecordsPerBatch) out.error = `batch of ${out.count} records exceeds the limit of ${limits.maxRecordsPerBatch}`
  return out
}

export function scanBatchFrame (buf: Buffer, limits: FrameLimits = DEFAULT_FRAME_LIMITS): { ok: true, frame: LazyBatchFrame } | { ok: false, error: string } {
  const st = scanBatchStart(buf, limits, FrameType.BATCH, 'BATCH')
  if (st.error !== undefined) return { ok: false, error: st.error }
  const { r, edgeId, fromOffset, toOffset, count } = st
  if (count * RECORD_FIXED_BYTES > buf.length - r.at) return { ok: false, error: `batch count ${count} does not fit the frame` }
  const recordsAt = r.at
  let at = r.at
  let prev = fromOffset
  let payloadBytes = 0
  const end = buf.length
  for (let i = 0; i < count; i++) {
    if (at + 28 > end) return { ok: false, error: 'truncated frame reading a record header' } // offsets, timestamp, qos, flags, topic length
    const offHi = buf.readUInt32BE(at)
    const nextHi = buf.readUInt32BE(at + 8)
    const tsHi = buf.readUInt32BE(at + 16)
    if (offHi >= 0x20_0000) return { ok: false, error: 'record offset exceeds 2^53' }
    if (nextHi >= 0x20_0000) return { ok: false, error: 'record nextOffset exceeds 2^53' }
    if (tsHi >= 0x20_0000) return { ok: false, error: 'record timestamp exceeds 2^53' }
    const offset = offHi * TWO_32 + buf.readUInt32BE(at + 4)
    const nextOffset = nextHi * TWO_32 + buf.readUInt32BE(at + 12)
    const qos = buf[at + 24]
    const flags = buf[at + 25]
    if (qos > 2) return { ok: false, error: `record qos ${qos} is not 0, 1 or 2` }
    if (flags > 1) return { ok: false, error: `record flags has unknown bits ${flags}` }
    const tLen = buf.readUInt16BE(at + 26)
    if (tLen > limits.maxTopicBytes) return { ok: false, error: `record topic is ${tLen} bytes, over the limit of ${limits.maxTopicBytes}` }
    at += 28 + tLen
    if (at + 4 > end) return { ok: false, error: at > end ? 'truncated frame reading record topic' : 'truncated frame reading record payload' }
    const pLen = buf.readUInt32BE(at)
    at += 4
    if (at + pLen > end) return { ok: false, error: 'truncated frame reading record payload' }
    at += pLen
    payloadBytes += pLen
    if (offset < prev || nextOffset <= offset || nextOffset > toOffset) {
      return { ok: false, error: `record ${i} offsets [${offset}, ${nextOffset}) out of order in batch [${fromOffset}, ${toOffset})` }
    }
    prev = nextOffset
  }
  if (at !== end) return { ok: false, error: `${end - at} trailing bytes after frame` }
  const firstOffset = count === 0 ? toOffset : buf.readUInt32BE(recordsAt) * TWO_32 + buf.readUInt32BE(recordsAt + 4)
  return { ok: true, frame: new LazyBatchFrame(edgeId, fromOffset, toOffset, { buf, recordsAt, count, firstOffset, payloadBytes }, limits) }
}

// Record walking over a frame scanBatchFrame accepted (no bounds checks: already done).
export function recordEnd (buf: Buffer, at: number): number {
  const t = at + 28 + buf.readUInt16BE(at + 26)
  return t + 4 + buf.readUInt32BE(t)
}
export function recordOffsetAt (buf: Buffer, at: number): number { return buf.readUInt32BE(at) * TWO_32 + buf.readUInt32BE(at + 4) }
export function recordTimestampAt (buf: Buffer, at: number): number { return buf.readUInt32BE(at + 16) * TWO_32 + buf.readUInt32BE(at + 20) }

// A BATCH frame made of `count` already encoded records (bytes [start, end) of `src`).
export function encodeBatchRaw (edgeId: string, fromOffset: number, toOffset: number, src: Buffer, start: number, end: number, count: number): Buffer {
  const idLen = Buffer.byteLength(edgeId)
  checkStrLen('edgeId', idLen)
  checkU53('fromOffset', fromOffset); checkU53('toOffset', toOffset)
  const buf = header(HEADER_BYTES + 2 + idLen + 16 + 4 + (end - start), FrameType.BATCH)
  let at = writeStr(buf, edgeId, idLen, HEADER_BYTES)
  at = writeU53(buf, fromOffset, at)
  at = writeU53(buf, toOffset, at)
  buf.writeUInt32BE(count, at); at += 4
  src.copy(buf, at, start, end)
  return buf
}

// ---------------------------------------------------------------- LOG_BATCH: edge log bytes as they are
// The edge reads its log raw (src/commitlog/raw-read.ts, CRCs checked there) and sends the bytes
// behind a small header it writes into room it left at the front of the read buffer: no object
// and no copy per record. The cloud checks the structure (below) without an object per record and
// stores the frame itself as one chunk (cloud/store/embedded.ts). A LOG_BATCH decodes to a
// BatchFrame (type BATCH: the same meaning); `raw` of the LazyLogBatchFrame tells them apart.
// The per-record CRC is not checked again at the cloud: the edge checked it when it read the
// bytes, the link is TCP (or TLS), and the cloud's log frames the chunk with a CRC of its own.

// Edge log record framing (src/commitlog/format.ts; the protocol restates it to stay a leaf).
const LOG_RECORD_MAGIC = 0x54524231
const LOG_RECORD_HEADER = 29
const RUN_HEADER_BYTES = 12

export function logBatchHeaderBytes (edgeIdBytes: number): number { return HEADER_BYTES + 2 + edgeIdBytes + 16 + 4 + 4 }
export const LOG_BATCH_RUN_HEADER_BYTES = RUN_HEADER_BYTES

// Writes the LOG_BATCH header at the start of `buf` (logBatchHeaderBytes of room).
export function writeLogBatchHeader (buf: Buffer, edgeId: string, edgeIdBytes: number, fromOffset: number, toOffset: number, count: number, runs: number): void {
  checkStrLen('edgeId', edgeIdBytes)
  checkU53('fromOffset', fromOffset); checkU53('toOffset', toOffset)
  buf[0] = MAGIC0; buf[1] = MAGIC1; buf[2] = BRIDGE_PROTOCOL_VERSION; buf[3] = FrameType.LOG_BATCH
  let at = writeStr(buf, edgeId, edgeIdBytes, HEADER_BYTES)
  at = writeU53(buf, fromOffset, at)
  at = writeU53(buf, toOffset, at)
  buf.writeUInt32BE(count, at)
  buf.writeUInt32BE(runs, at + 4)
}

// Writes a run header (offset of its first record, bytes of records that follow) at `at`.
export function writeLogBatchRun (buf: Buffer, at: number, offset: number, bytes: number): void {
  checkU53('run offset', offset)
  writeU53(buf, offset, at)
  buf.writeUInt32BE(bytes, at + 8)
}

// A whole LOG_BATCH from runs of already framed edge log records (tests; the edge builds its
// frames in place instead).
export function encodeLogBatch (edgeId: string, fromOffset: number, toOffset: number, runs: ReadonlyArray<{ offset: number, frames: Buffer }>): Buffer {
  const idLen = Buffer.byteLength(edgeId)
  let size = logBatchHeaderBytes(idLen)
  let count = 0
  for (const run of runs) {
    size += RUN_HEADER_BYTES + run.frames.length
    for (let p = 0; p + 8 <= run.frames.length && run.frames.readUInt32LE(p + 4) > 0; p += run.frames.readUInt32LE(p + 4)) count++
  }
  const buf = Buffer.allocUnsafe(size)
  writeLogBatchHeader(buf, edgeId, idLen, fromOffset, toOffset, count, runs.length)
  let at = logBatchHeaderBytes(idLen)
  for (const run of runs) {
    writeLogBatchRun(buf, at, run.offset, run.frames.length)
    run.frames.copy(buf, at + RUN_HEADER_BYTES)
    at += RUN_HEADER_BYTES + run.frames.length
  }
  return buf
}

export interface ScannedLogBatch {
  buf: Buffer // the whole frame
  runsAt: number // byte position of the first run header
  runs: number
  count: number
  firstOffset: number // edge offset of the first record (toOffset when there is none)
  payloadBytes: number
  maxTimestampMs: number // newest record's timestamp (0 when there is none)
  retained: boolean // some record has the retain flag (the cloud store keeps this per chunk)
}

// Walks the records of a scanned LOG_BATCH: `visit(buf, recordAt, edgeOffset)` per record, in order.
export function forEachLogRecord (raw: ScannedLogBatch, visit: (buf: Buffer, at: number, offset: number) => void): void {
  const buf = raw.buf
  let at = raw.runsAt
  for (let k = 0; k < raw.runs; k++) {
    const runOffset = readU53(buf, at)
    const runEnd = at + RUN_HEADER_BYTES + buf.readUInt32BE(at + 8)
    const runStart = at + RUN_HEADER_BYTES
    for (let p = runStart; p < runEnd; p += buf.readUInt32LE(p + 4)) visit(buf, p, runOffset + (p - runStart))
    at = runEnd
  }
}

// Fields of one edge log record inside a scanned LOG_BATCH (at = the record's first byte).
export function logRecordTopicStart (at: number): number { return at + LOG_RECORD_HEADER }
export function logRecordTopicEnd (buf: Buffer, at: number): number { return at + LOG_RECORD_HEADER + buf.readUInt16LE(at + 21) }
export function logRecordPayloadStart (buf: Buffer, at: number): number { return logRecordTopicEnd(buf, at) + buf.readUInt16LE(at + 23) }
export function logRecordLength (buf: Buffer, at: number): number { return buf.readUInt32LE(at + 4) }
export function logRecordTimestamp (buf: Buffer, at: number): number { return buf.readUInt32LE(at + 12) + buf.readUInt32LE(at + 16) * TWO_32 }
export function logRecordQos (buf: Buffer, at: number): QoSLevel { return (buf[at + 20] & 3) as QoSLevel }
export function logRecordRetain (buf: Buffer, at: number): boolean { return (buf[at + 20] & 4) !== 0 }

// u32 little endian from bytes the caller has bounds-checked.
function u32le (buf: Buffer, at: number): number { return (buf[at] | (buf[at + 1] << 8) | (buf[at + 2] << 16)) + buf[at + 3] * 0x100_0000 }

function readU53 (buf: Buffer, at: number): number { return buf.readUInt32BE(at) * TWO_32 + buf.readUInt32BE(at + 4) }

export class LazyLogBatchFrame implements BatchFrame {
  readonly type = FrameType.BATCH
  private decoded: BridgeRecord[] | undefined
  constructor (readonly edgeId: string, readonly fromOffset: number, readonly toOffset: number, readonly raw: ScannedLogBatch) {}

  // Objects for stores that need them (memory, JetStream) and for replayed batches.
  get records (): BridgeRecord[] {
    if (this.decoded === undefined) {
      const out: BridgeRecord[] = []
      forEachLogRecord(this.raw, (buf, at, offset) => {
        const pStart = logRecordPayloadStart(buf, at)
        out.push({
          offset,
          nextOffset: offset + logRecordLength(buf, at),
          timestampMs: logRecordTimestamp(buf, at),
          qos: logRecordQos(buf, at),
          retain: logRecordRetain(buf, at),
          topic: buf.toString('utf8', logRecordTopicStart(at), logRecordTopicEnd(buf, at)),
          payload: buf.subarray(pStart, at + logRecordLength(buf, at))
        })
      })
      this.decoded = out
    }
    return this.decoded
  }
}

// Checks a LOG_BATCH frame as strictly as decodeFrame checks a BATCH (limits, every length, the
// log order of runs and records, qos and flag bits, trailing bytes), without an object per record.
export function scanLogBatchFrame (buf: Buffer, limits: FrameLimits = DEFAULT_FRAME_LIMITS): { ok: true, frame: LazyLogBatchFrame } | { ok: false, error: string } {
  const st = scanBatchStart(buf, limits, FrameType.LOG_BATCH, 'LOG_BATCH')
  if (st.error !== undefined) return { ok: false, error: st.error }
  const { r, edgeId, fromOffset, toOffset, count } = st
  const runs = r.u32('runCount')
  if (r.error !== undefined) return { ok: false, error: r.error }
  if (runs > count) return { ok: false, error: `batch of ${count} records cannot have ${runs} runs` }
  const runsAt = r.at
  const end = buf.length
  let at = runsAt
  let prev = fromOffset
  let seen = 0
  let payloadBytes = 0
  let maxTs = 0
  let retained = 0
  for (let k = 0; k < runs; k++) {
    if (at + RUN_HEADER_BYTES > end) return { ok: false, error: 'truncated frame reading a run header' }
    const offHi = buf.readUInt32BE(at)
    if (offHi >= 0x20_0000) return { ok: false, error: 'run offset exceeds 2^53' }
    const runOffset = offHi * TWO_32 + buf.readUInt32BE(at + 4)
    const bytes = buf.readUInt32BE(at + 8)
    const runStart = at + RUN_HEADER_BYTES
    const runEnd = runStart + bytes
    if (bytes === 0) return { ok: false, error: `run ${k} is empty` }
    if (runEnd > end) return { ok: false, error: 'truncated frame reading a run' }
    if (runOffset < prev || runOffset + bytes > toOffset) {
      return { ok: false, error: `run ${k} [${runOffset}, ${runOffset + bytes}) out of order in batch [${fromOffset}, ${toOffset})` }
    }
    for (let p = runStart; p < runEnd;) {
      // Plain byte arithmetic (all within [runStart, runEnd), checked first): about half the
      // cost of Buffer#readUInt*LE calls on the cloud's hot path.
      if (p + LOG_RECORD_HEADER > runEnd) return { ok: false, error: 'truncated record header in a run' }
      if (u32le(buf, p) !== LOG_RECORD_MAGIC) return { ok: false, error: `record ${seen} has a bad magic` }
      const len = u32le(buf, p + 4)
      const tLen = buf[p + 21] | (buf[p + 22] << 8)
      const cLen = buf[p + 23] | (buf[p + 24] << 8)
      const pLen = u32le(buf, p + 25)
      if (len < LOG_RECORD_HEADER || p + len > runEnd) return { ok: false, error: `record ${seen} of ${len} bytes does not fit its run` }
      if (LOG_RECORD_HEADER + tLen + cLen + pLen !== len) return { ok: false, error: `record ${seen} lengths do not add up` }
      if (tLen > limits.maxTopicBytes) return { ok: false, error: `record topic is ${tLen} bytes, over the limit of ${limits.maxTopicBytes}` }
      const flags = buf[p + 20]
      if ((flags & 3) > 2 || flags > 7) return { ok: false, error: `record ${seen} has bad flags ${flags}` }
      retained |= flags & 4
      const tsHi = u32le(buf, p + 16)
      if (tsHi >= 0x20_0000) return { ok: false, error: 'record timestamp exceeds 2^53' }
      const ts = u32le(buf, p + 12) + tsHi * TWO_32
      if (ts > maxTs) maxTs = ts
      payloadBytes += pLen
      if (++seen > count) return { ok: false, error: `batch holds more records than its count ${count}` }
      p += len
    }
    prev = runOffset + bytes
    at = runEnd
  }
  if (seen !== count) return { ok: false, error: `batch holds ${seen} records, not its count ${count}` }
  if (at !== end) return { ok: false, error: `${end - at} trailing bytes after frame` }
  const firstOffset = runs === 0 ? toOffset : readU53(buf, runsAt)
  return { ok: true, frame: new LazyLogBatchFrame(edgeId, fromOffset, toOffset, { buf, runsAt, runs, count, firstOffset, payloadBytes, maxTimestampMs: maxTs, retained: retained !== 0 }) }
}

export function frameTypeName (type: number): string {
  for (const [name, value] of Object.entries(FrameType)) if (value === type) return name
  return `UNKNOWN(${type})`
}
