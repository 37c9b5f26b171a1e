// A segment file: its place in the log and a sequential scanner used by recovery, index rebuild
// and retention accounting.
import { closeSync, openSync, readSync } from 'node:fs'
import { newProbe, probeFrame, recordTimestamp, recordTopic } from './format.js'
import { SegmentTimeIndex } from './time-index.js'

export class Segment {
  readonly base: number
  readonly path: string
  // Global offset just past the last byte written to the file (end-of-segment marker included).
  end: number
  sealed: boolean
  time: SegmentTimeIndex

  constructor (base: number, path: string, end: number, time: SegmentTimeIndex) {
    this.base = base
    this.path = path
    this.end = end
    this.sealed = time.sealed
    this.time = time
  }
}

// Called per valid record during a scan; `buf` is reused between calls.
export type ScanVisitor = (offset: number, frameBytes: number, timestampMs: number, topic: string) => void

export interface ScanResult {
  // Global offset where the scan stopped: past the last valid frame.
  validEnd: number
  // Ended with an end-of-segment marker.
  sealed: boolean
  // Stopped at something that is not a valid frame (torn tail, garbage) before the file's end.
  stoppedAtBad: boolean
  records: number
  lastRecordOffset: number
  lastTimestampMs: number
}

// Read chunk for scans: large sequential reads; a record never exceeds maxRecordBytes, and the
// chunk grows to hold one when needed.
const SCAN_CHUNK_BYTES = 1024 * 1024

// Scans `path` (a segment starting at global offset `base`) from global offset `from` up to the
// file size `fileEnd`, validating every frame (magic, length, CRC).
export function scanSegment (
  path: string, base: number, from: number, fileEnd: number, maxRecordBytes: number,
  visit: ScanVisitor | null
): ScanResult {
  const result: ScanResult = { validEnd: from, sealed: false, stoppedAtBad: false, records: 0, lastRecordOffset: -1, lastTimestampMs: 0 }
  const fd = openSync(path, 'r')
  try {
    let buf = Buffer.allocUnsafe(Math.max(SCAN_CHUNK_BYTES, maxRecordBytes))
    const probe = newProbe()
    let pos = from // global offset of buf[0]
    let len = 0
    let at = 0
    while (true) {
      // Refill: keep the unparsed tail, read more after it.
      if (at > 0) { buf.copy(buf, 0, at, len); len -= at; pos += at; at = 0 }
      const want = Math.min(buf.length - len, fileEnd - (pos + len))
      if (want > 0) {
        const got = readSync(fd, buf, len, want, pos + len - base)
        len += got
      }
      if (len === 0) break
      let progressed = false
      while (true) {
        probeFrame(buf, at, len, maxRecordBytes, probe)
        if (probe.check === 'record') {
          const offset = pos + at
          const ts = recordTimestamp(buf, at)
          if (visit !== null) visit(offset, probe.length, ts, recordTopic(buf, at))
          result.records++
          result.lastRecordOffset = offset
          result.lastTimestampMs = ts
          at += probe.length
          result.validEnd = pos + at
          progressed = true
        } else if (probe.check === 'segment-end') {
          at += probe.length
          result.validEnd = pos + at
          result.sealed = true
          // Anything after the marker is not part of the log.
          result.stoppedAtBad = pos + at < fileEnd
          return result
        } else if (probe.check === 'short') {
          if (pos + len >= fileEnd) {
            // Nothing more to read: a torn frame at the tail (or a clean end if at === len).
            result.stoppedAtBad = at < len
            return result
          }
          if (probe.length > buf.length) buf = Buffer.concat([buf.subarray(0, len), Buffer.allocUnsafe(probe.length)])
          break // refill
        } else {
          result.stoppedAtBad = true
          return result
        }
      }
      if (!progressed && at === 0 && len === buf.length) { result.stoppedAtBad = true; return result }
    }
    return result
  } finally {
    closeSync(fd)
  }
}

export function newTimeIndex (base: number): SegmentTimeIndex {
  return new SegmentTimeIndex(base)
}
