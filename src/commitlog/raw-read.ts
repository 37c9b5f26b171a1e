// Raw reads: records as their framed bytes (README "Record layout"), checked but not decoded.
// A replicator (the edge's bridge) ships these bytes as they are, so reading a record costs a
// share of one positional read and its CRC check: no object, no topic string, no copy.
//
//   const r = readRaw(log, offset, buf, at, { maxBytes, maxRecords, maxOffset: log.durableOffset }, out)
//   // buf[out.start, out.end): out.records whole, CRC-checked frames; the first one at log offset
//   // `offset` (or at startOffset when status is 'truncated'); continue at out.nextOffset.
//
// A read never crosses a segment: it stops at an end-of-segment marker (consumed: `nextOffset` is
// past it, the marker's bytes are not in the range), so the frames of one read are contiguous in
// the log: a frame's offset is the previous frame's offset plus its length.
// Offset gaps (left by a dirty recovery with a replicate-ahead window; README "Offsets") lie only
// after an end-of-segment marker: a read that consumes a marker continues at the next segment's
// base, and a read that starts inside a gap returns 'ok' with no records and `nextOffset` past it.
import { tributaryError } from '../errors/index.js'
import { HEADER_BYTES, newProbe, probeFrame, type FrameProbe } from './format.js'

// What a raw read needs of the log (CommitLog provides it).
export interface RawLogSource {
  readonly startOffset: number
  readBytes (offset: number, into: Buffer, at: number, len: number, maxOffset: number): number
  // The next segment's base when `offset` lies in an offset gap (or at a sealed segment's end).
  skipGap (offset: number): number
}

export interface RawReadLimits {
  maxBytes: number // bytes of frames read at most (a first frame larger than this: status 'short')
  maxRecords: number
  maxOffset: number // stop before this log offset (a replicator passes durableOffset)
  // Frame lengths beyond this are corruption (bounds what garbage can make a reader allocate).
  maxRecordBytes: number
}

export type RawReadStatus =
  | 'ok' // records in [start, end) (maybe none: only an end-of-segment marker was consumed)
  | 'end' // nothing at `offset` yet (or `offset` is maxOffset)
  | 'truncated' // `offset` was deleted by retention; nextOffset is the oldest retained offset
  | 'short' // the first frame needs `needBytes` of room: read again with a buffer that large

export interface RawRead {
  status: RawReadStatus
  start: number
  end: number
  records: number
  firstOffset: number // log offset of the frame at `start`
  nextOffset: number
  needBytes: number
}

export function newRawRead (): RawRead {
  return { status: 'end', start: 0, end: 0, records: 0, firstOffset: 0, nextOffset: 0, needBytes: 0 }
}

const probe: FrameProbe = newProbe()

// Reads into `buf` from `at` (the caller leaves room for its own header before `at`; the buffer
// must have at least `limits.maxBytes` bytes from `at`). Throws TRIB_ERR_LOG_CORRUPT on a frame
// that fails its checks inside the durable part of the log: that is not an expected outcome.
export function readRaw (log: RawLogSource, offset: number, buf: Buffer, at: number, limits: RawReadLimits, out: RawRead): RawRead {
  out.start = at
  out.end = at
  out.records = 0
  out.needBytes = 0
  out.firstOffset = offset
  out.nextOffset = offset
  const got = log.readBytes(offset, buf, at, limits.maxBytes, limits.maxOffset)
  if (got < 0) {
    out.status = 'truncated'
    out.firstOffset = out.nextOffset = log.startOffset
    return out
  }
  if (got === 0) {
    // Nothing at `offset`: the end, or an offset gap, crossed by a read without records.
    const next = log.skipGap(offset)
    if (next > offset && next <= limits.maxOffset) { out.nextOffset = out.firstOffset = next; out.status = 'ok'; return out }
    out.status = 'end'
    return out
  }
  const end = at + got
  let p = at
  while (out.records < limits.maxRecords) {
    probeFrame(buf, p, end, limits.maxRecordBytes, probe)
    if (probe.check === 'record') {
      p += probe.length
      out.records++
      continue
    }
    if (probe.check === 'segment-end') {
      out.end = p
      out.nextOffset = log.skipGap(offset + (p - at) + probe.length)
      out.status = 'ok'
      return out
    }
    // 'short' past the first frame: cut by the byte budget; the next read starts there. A frame
    // that does not check ('bad'), or is cut where no budget cut it, is reported by the read
    // that starts at it, so the good frames before it are still delivered.
    if (p > at) break
    if (probe.check === 'short' && got === limits.maxBytes) {
      out.status = 'short'
      out.needBytes = probe.length
      return out
    }
    throw tributaryError('TRIB_ERR_LOG_CORRUPT', `bad record at offset ${offset}`, { offset })
  }
  out.end = p
  out.nextOffset = offset + (p - at)
  out.status = 'ok'
  return out
}

// Field access on a checked frame at `p` (the layout of format.ts).
export function rawTopicStart (p: number): number { return p + HEADER_BYTES }
export function rawTopicLength (buf: Buffer, p: number): number { return buf[p + 21] | (buf[p + 22] << 8) }
export function rawClientIdLength (buf: Buffer, p: number): number { return buf[p + 23] | (buf[p + 24] << 8) }
export function rawFrameLength (buf: Buffer, p: number): number { return buf.readUInt32LE(p + 4) }
export function rawTimestamp (buf: Buffer, p: number): number { return buf.readUInt32LE(p + 12) + buf.readUInt32LE(p + 16) * 0x1_0000_0000 }
