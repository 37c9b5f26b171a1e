// The body of one uplink stream message ("chunk"): a run of consecutive records of one edge.
// Byte layout (big-endian; u53 = hi u32 | lo u32, value < 2^53):
//
//   chunk  = version u8 (=1) | count u32 | record*count
//   record = offset u53 | nextOffset u53 | timestampMs u53 | qos u8 | flags u8 (bit0 retain)
//            | topicLength u16 | topic UTF-8 | payloadLength u32 | payload
//
// Pure: no I/O. Decoding never throws; a malformed chunk is `undefined` (the caller reports it).
import type { BridgeRecord, QoSLevel } from '../../../src/protocol/bridge-frames.js'

export const CHUNK_VERSION = 1
const CHUNK_HEADER_BYTES = 5
const RECORD_FIXED_BYTES = 8 * 3 + 1 + 1 + 2 + 4
const TWO_32 = 0x1_0000_0000

export function recordEncodedBytes (r: BridgeRecord): number {
  return RECORD_FIXED_BYTES + Buffer.byteLength(r.topic, 'utf8') + r.payload.length
}

export function chunkOverheadBytes (): number {
  return CHUNK_HEADER_BYTES
}

function writeU53 (buf: Buffer, value: number, at: number): number {
  buf.writeUInt32BE(Math.floor(value / TWO_32), at)
  buf.writeUInt32BE(value % TWO_32, at + 4)
  return at + 8
}

function readU53 (buf: Buffer, at: number): number {
  return buf.readUInt32BE(at) * TWO_32 + buf.readUInt32BE(at + 4)
}

// Encodes records[start, end). `bytes` must be the sum of recordEncodedBytes over them.
export function encodeChunk (records: readonly BridgeRecord[], start: number, end: number, bytes: number): Buffer {
  const buf = Buffer.allocUnsafe(CHUNK_HEADER_BYTES + bytes)
  buf.writeUInt8(CHUNK_VERSION, 0)
  buf.writeUInt32BE(end - start, 1)
  let at = CHUNK_HEADER_BYTES
  for (let i = start; i < end; i++) {
    const r = records[i] as BridgeRecord
    at = writeU53(buf, r.offset, at)
    at = writeU53(buf, r.nextOffset, at)
    at = writeU53(buf, r.timestampMs, at)
    buf.writeUInt8(r.qos, at)
    buf.writeUInt8(r.retain ? 1 : 0, at + 1)
    const topicBytes = buf.write(r.topic, at + 4, 'utf8')
    buf.writeUInt16BE(topicBytes, at + 2)
    at += 4 + topicBytes
    buf.writeUInt32BE(r.payload.length, at)
    at += 4
    at += r.payload.copy(buf, at)
  }
  if (at !== buf.length) throw new Error(`chunk size mismatch: wrote ${at} of ${buf.length} bytes`)
  return buf
}

// A bridge record whose payload is a view into the chunk buffer (no copy).
export type ChunkRecord = BridgeRecord

export function decodeChunk (buf: Buffer): ChunkRecord[] | undefined {
  if (buf.length < CHUNK_HEADER_BYTES || buf.readUInt8(0) !== CHUNK_VERSION) return undefined
  const count = buf.readUInt32BE(1)
  // Each record takes at least RECORD_FIXED_BYTES: reject a count the buffer cannot hold before
  // allocating anything for it.
  if (count * RECORD_FIXED_BYTES > buf.length - CHUNK_HEADER_BYTES) return undefined
  const out: ChunkRecord[] = new Array(count)
  let at = CHUNK_HEADER_BYTES
  for (let i = 0; i < count; i++) {
    if (at + RECORD_FIXED_BYTES > buf.length) return undefined
    const offset = readU53(buf, at)
    const nextOffset = readU53(buf, at + 8)
    const timestampMs = readU53(buf, at + 16)
    const qos = buf.readUInt8(at + 24)
    const flags = buf.readUInt8(at + 25)
    const topicLength = buf.readUInt16BE(at + 26)
    at += 28
    if (qos > 2 || at + topicLength + 4 > buf.length) return undefined
    const topic = buf.toString('utf8', at, at + topicLength)
    at += topicLength
    const payloadLength = buf.readUInt32BE(at)
    at += 4
    if (at + payloadLength > buf.length) return undefined
    out[i] = { offset, nextOffset, timestampMs, qos: qos as QoSLevel, retain: (flags & 1) === 1, topic, payload: buf.subarray(at, at + payloadLength) }
    at += payloadLength
  }
  return at === buf.length ? out : undefined
}
