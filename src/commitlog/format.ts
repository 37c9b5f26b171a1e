// Record framing: the byte layout of one record in a segment, and its encoder/decoder.
// The layout is documented byte by byte in README.md; keep both in step.
//
//   0  magic        u32 LE  RECORD_MAGIC
//   4  totalLength  u32 LE  whole frame, magic included
//   8  crc32        u32 LE  CRC-32 (zlib.crc32's) over bytes [12, totalLength)
//  12  timestamp    u64 LE  ms since epoch (values < 2^48: written as low 48 bits + 2 zero bytes)
//  20  flags        u8      bits 0-1 QoS, bit 2 retain
//  21  topicLen     u16 LE
//  23  clientIdLen  u16 LE
//  25  payloadLen   u32 LE
//  29  topic | clientId | payload
//
// An end-of-segment marker (SEGMENT_END_MAGIC, then u32 0) closes a segment that was rolled.
import { crc32Range, recordCrc } from './crc.js'
import type { QoS } from './types.js'

export const RECORD_MAGIC = 0x54524231 // "1BRT" on disk (LE of "TRB1")
export const SEGMENT_END_MAGIC = 0x454f5331 // end-of-segment marker
export const HEADER_BYTES = 29
export const SEGMENT_END_BYTES = 8
export const CRC_START = 12

// u16 length fields bound topic and client id; MQTT itself caps both at 65535 bytes.
export const MAX_TOPIC_BYTES = 0xffff
export const MAX_CLIENT_ID_BYTES = 0xffff

const TWO_32 = 0x1_0000_0000

export function writeU48 (buf: Buffer, value: number, at: number): void {
  // Two u32 halves: cheaper than writeBigUInt64LE (no BigInt) and exact for values < 2^53.
  // `>>> 0` is the value modulo 2^32 for integers below 2^53.
  putU32(buf, at, value >>> 0)
  putU32(buf, at + 4, (value / TWO_32) >>> 0)
}

// Plain byte stores (a typed array truncates to 8 bits): on the append path cheaper than
// Buffer#writeUInt32LE, which checks its arguments on every call. Callers own the bounds.
export function putU32 (buf: Buffer, at: number, v: number): void {
  buf[at] = v
  buf[at + 1] = v >>> 8
  buf[at + 2] = v >>> 16
  buf[at + 3] = v >>> 24
}

export function readU48 (buf: Buffer, at: number): number {
  return buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * TWO_32
}

export function frameBytes (topicLen: number, clientIdLen: number, payloadLen: number): number {
  return HEADER_BYTES + topicLen + clientIdLen + payloadLen
}

// Writes one framed record into `buf` at `at` (the caller made room). Returns the frame length.
export function encodeRecord (
  buf: Buffer, at: number, timestampMs: number, qos: QoS, retain: boolean,
  topic: Buffer, clientId: Buffer, payload: Buffer
): number {
  const topicLen = topic.length
  const clientIdLen = clientId.length
  const total = HEADER_BYTES + topicLen + clientIdLen + payload.length
  if (at + total > buf.length) throw new RangeError('encodeRecord: no room in the buffer')
  putU32(buf, at, RECORD_MAGIC)
  putU32(buf, at + 4, total)
  writeU48(buf, timestampMs, at + 12)
  buf[at + 20] = (qos & 3) | (retain ? 4 : 0)
  buf[at + 21] = topicLen
  buf[at + 22] = topicLen >>> 8
  buf[at + 23] = clientIdLen
  buf[at + 24] = clientIdLen >>> 8
  putU32(buf, at + 25, payload.length)
  // TypedArray#set: a V8 builtin, cheaper than Buffer#copy's native call for small buffers.
  let p = at + HEADER_BYTES
  buf.set(topic, p)
  p += topicLen
  buf.set(clientId, p)
  p += clientIdLen
  buf.set(payload, p)
  putU32(buf, at + 8, recordCrc(buf, at + CRC_START, p, payload))
  return total
}

export function writeSegmentEnd (buf: Buffer, at: number): void {
  buf.writeUInt32LE(SEGMENT_END_MAGIC, at)
  buf.writeUInt32LE(0, at + 4)
}

// What is found at a position: an expected outcome, not an exception (torn tails are normal).
export type FrameCheck =
  | 'record' // a whole record with a valid CRC
  | 'segment-end' // an end-of-segment marker
  | 'short' // fewer bytes available than the frame needs (torn tail, or read more)
  | 'bad' // wrong magic, impossible length or CRC mismatch

export interface FrameProbe {
  check: FrameCheck
  length: number // frame length for 'record' / 'segment-end', else 0 (or needed bytes for 'short')
}

// Checks the frame at `at` within buf[0, end). `maxRecordBytes` rejects absurd lengths early so
// garbage cannot make us read gigabytes.
export function probeFrame (buf: Buffer, at: number, end: number, maxRecordBytes: number, out: FrameProbe): FrameProbe {
  const avail = end - at
  if (avail < 8) { out.check = avail <= 0 ? 'short' : 'short'; out.length = 8; return out }
  const magic = buf.readUInt32LE(at)
  const length = buf.readUInt32LE(at + 4)
  if (magic === SEGMENT_END_MAGIC) {
    if (length !== 0) { out.check = 'bad'; out.length = 0; return out }
    out.check = 'segment-end'; out.length = SEGMENT_END_BYTES; return out
  }
  if (magic !== RECORD_MAGIC || length < HEADER_BYTES || length > maxRecordBytes) {
    out.check = 'bad'; out.length = 0; return out
  }
  if (avail < length) { out.check = 'short'; out.length = length; return out }
  const topicLen = buf.readUInt16LE(at + 21)
  const clientIdLen = buf.readUInt16LE(at + 23)
  const payloadLen = buf.readUInt32LE(at + 25)
  if (HEADER_BYTES + topicLen + clientIdLen + payloadLen !== length ||
      buf.readUInt32LE(at + 8) !== crc32Range(buf, at + CRC_START, at + length)) {
    out.check = 'bad'; out.length = 0; return out
  }
  out.check = 'record'; out.length = length; return out
}

export function newProbe (): FrameProbe { return { check: 'short', length: 0 } }

export interface DecodedRecord {
  timestampMs: number
  qos: QoS
  retain: boolean
  topic: string
  clientId: string
  payload: Buffer // a view into the read buffer (no copy)
}

// Decodes a frame already checked by probeFrame.
export function decodeRecord (buf: Buffer, at: number): DecodedRecord {
  const topicLen = buf.readUInt16LE(at + 21)
  const clientIdLen = buf.readUInt16LE(at + 23)
  const payloadLen = buf.readUInt32LE(at + 25)
  const flags = buf[at + 20] as number
  const t = at + HEADER_BYTES
  const c = t + topicLen
  const p = c + clientIdLen
  return {
    timestampMs: readU48(buf, at + 12),
    qos: (flags & 3) as QoS,
    retain: (flags & 4) !== 0,
    topic: buf.toString('utf8', t, c),
    clientId: buf.toString('utf8', c, p),
    payload: buf.subarray(p, p + payloadLen)
  }
}

export function recordTopic (buf: Buffer, at: number): string {
  const topicLen = buf.readUInt16LE(at + 21)
  return buf.toString('utf8', at + HEADER_BYTES, at + HEADER_BYTES + topicLen)
}

export function recordTimestamp (buf: Buffer, at: number): number {
  return readU48(buf, at + 12)
}
