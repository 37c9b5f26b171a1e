// Recovery at open (README "Open, recovery, close", steps 1-5): lists the segments, decides
// whether the last shutdown was dirty, rescans from the checkpoint (or earlier where an index is
// missing or behind), truncates a torn or corrupt tail, rebuilds the topic and time indexes, and
// seals the tail for an offset gap after a dirty shutdown with a replicate-ahead window.
//
// Separate from commit-log.ts because it runs once, before the log exists, and touches only
// files, the topic index and the segment list it returns; its comments are the documentation of
// the recovery rules. CommitLog keeps what needs its own state: re-opening the tail (or starting
// a new segment) for appends, its end/durable/lastTs, and step 6 (DIRTY marker, checkpoint).
import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, unlinkSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from '../log/index.js'
import { readCheckpoint } from './checkpoint.js'
import { CHECKPOINT_FILE, dirtyMarkerExists, listSegmentBases, segmentName, timeIndexName } from './files.js'
import { SEGMENT_END_BYTES, writeSegmentEnd } from './format.js'
import { Segment, scanSegment } from './segment.js'
import { SegmentTimeIndex } from './time-index.js'
import type { TopicIndex } from './topic-index.js'
import type { RecoveryReport } from './types.js'

export interface RecoveryInput {
  dir: string
  maxRecordBytes: number
  // CommitLogOptions.replicateAheadBytes (0 when omitted): the offset gap after a dirty shutdown.
  aheadBytes: number
  // Loaded, reset or trimmed, and refilled by the rescan; written out when a rescan ran.
  topics: TopicIndex
  log: Logger
}

export interface Recovered {
  report: RecoveryReport
  // The recovered segments in offset order. If the last one is not sealed, appends continue in
  // it; else (or with none) the next segment starts at report.endOffset + report.gapBytes.
  segments: Segment[]
}

export function recover (input: RecoveryInput): Recovered {
  const { dir, log, topics } = input
  const cp = readCheckpoint(join(dir, CHECKPOINT_FILE))
  let dirty = dirtyMarkerExists(dir)
  const segments = loadSegments(dir)
  const first = segments[0]
  const last = segments[segments.length - 1]
  const fileEnd = last === undefined ? 0 : last.end
  if (last !== undefined && (cp === null || cp.durableOffset !== fileEnd)) dirty = true

  // Where the scan must start: the checkpoint after a dirty shutdown, earlier where an index is
  // missing or behind.
  let scanFrom = Infinity
  if (dirty && first !== undefined) scanFrom = cp === null ? first.base : Math.min(cp.durableOffset, cp.indexedOffset)
  if (cp !== null && first !== undefined && cp.durableOffset > fileEnd) {
    // The disk lost data it had confirmed as synced (or files were cut by hand): trust nothing.
    log.error({ durableOffset: cp.durableOffset, fileEnd }, 'commitlog is shorter than its checkpoint: acknowledged data was lost; rescanning everything')
    scanFrom = first.base
  }
  const topicsOk = topics.load().ok
  if (first !== undefined && !topicsOk) {
    log.warn('topic index missing or incomplete: rebuilding from the whole log')
    topics.reset()
    scanFrom = first.base
  }
  if (cp !== null && cp.indexedOffset < fileEnd) scanFrom = Math.min(scanFrom, cp.indexedOffset)
  for (const s of segments) {
    if (s.time.coveredEnd < 0) { s.time = new SegmentTimeIndex(s.base); scanFrom = Math.min(scanFrom, s.base) } else if (s.time.coveredEnd < s.end) scanFrom = Math.min(scanFrom, s.time.coveredEnd)
    s.sealed = s.time.sealed && s.time.coveredEnd === s.end
  }
  const report: RecoveryReport = { dirty, scannedFromOffset: fileEnd, truncatedBytes: 0, recordsRecovered: 0, endOffset: fileEnd, gapBytes: 0 }
  if (first !== undefined && scanFrom < fileEnd) rescan(input, segments, Math.max(scanFrom, first.base), fileEnd, report)
  const tail = segments[segments.length - 1]
  // After a dirty shutdown a replica may hold records past what survived (replicate-ahead,
  // replicableOffset): those that were written but not durable when the power went. New records
  // must not reuse their offsets (a replica's dedupe, keyed by offset, would drop them as
  // replays), so the next segment starts `aheadBytes` past the recovered end. Everything read
  // before the crash lay below durable + W <= recovered end + W.
  if (dirty && input.aheadBytes > 0 && tail !== undefined) {
    if (!tail.sealed) sealForGap(dir, tail)
    report.gapBytes = input.aheadBytes
  }
  report.endOffset = tail === undefined ? 0 : tail.end
  return { report, segments }
}

// Every segment file with its size and its time index (coveredEnd -1 where the index is missing
// or claims more than the file holds: rebuilt by the rescan).
function loadSegments (dir: string): Segment[] {
  const segments: Segment[] = []
  for (const base of listSegmentBases(dir)) {
    const path = join(dir, segmentName(base))
    const fd = openSync(path, 'r')
    const size = fstatSync(fd).size
    closeSync(fd)
    let time = SegmentTimeIndex.load(join(dir, timeIndexName(base)), base)
    if (time !== null && time.coveredEnd > base + size) time = null // index claims more than the file holds
    segments.push(new Segment(base, path, base + size, time ?? new SegmentTimeIndex(base)))
    if (time === null) (segments[segments.length - 1] as Segment).time.coveredEnd = -1
  }
  return segments
}

// Drops index entries at or past `scanFrom`, then validates every frame from there (magic,
// length, CRC), re-adding index entries, up to the first bad or short frame: that segment is cut
// there (fsynced) and every later one deleted.
function rescan (input: RecoveryInput, segments: Segment[], scanFrom: number, fileEnd: number, report: RecoveryReport): void {
  const { dir, log, topics } = input
  const last = segments[segments.length - 1]
  report.scannedFromOffset = scanFrom
  log.info({ dirty: report.dirty, scanFrom, fileEnd }, 'commitlog recovery: scanning')
  topics.truncateFrom(scanFrom)
  let i = segments.findIndex((s) => s.end > scanFrom || s === last)
  for (let k = i; k < segments.length; k++) {
    const s = segments[k] as Segment
    if (s.base >= scanFrom) s.time = new SegmentTimeIndex(s.base)
    else s.time.truncate(scanFrom)
    s.sealed = false
  }
  let from = scanFrom
  let currentTime: SegmentTimeIndex = (segments[i] as Segment).time
  const visit = (offset: number, frameBytes: number, ts: number, topic: string): void => {
    currentTime.add(offset, ts, offset + frameBytes)
    topics.add(topics.getOrCreate(topic), offset, frameBytes, ts)
    report.recordsRecovered++
  }
  for (; i < segments.length; i++) {
    const s = segments[i] as Segment
    currentTime = s.time
    const r = scanSegment(s.path, s.base, Math.max(from, s.base), s.end, input.maxRecordBytes, visit)
    const isLast = i === segments.length - 1
    if (r.sealed && !r.stoppedAtBad) {
      s.sealed = true
      s.time.seal(r.lastRecordOffset, r.records > 0 ? r.lastTimestampMs : s.time.lastTs, r.validEnd)
      s.time.save(join(dir, timeIndexName(s.base)))
      from = s.end
      continue
    }
    if (r.stoppedAtBad || (!r.sealed && !isLast) || r.validEnd < s.end) {
      // Torn tail or garbage: cut here, and drop every later segment (nothing after a hole).
      const cut = r.validEnd
      report.truncatedBytes += s.end - cut
      const fd = openSync(s.path, 'r+')
      ftruncateSync(fd, cut - s.base)
      fsyncSync(fd)
      closeSync(fd)
      s.end = cut
      s.sealed = r.sealed
      if (r.sealed) s.time.seal(r.lastRecordOffset, r.lastTimestampMs, cut)
      for (const later of segments.splice(i + 1)) {
        report.truncatedBytes += later.end - later.base
        unlinkSync(later.path)
        try { unlinkSync(join(dir, timeIndexName(later.base))) } catch { /* none */ }
      }
      log.warn({ segment: s.path, offset: cut, truncatedBytes: report.truncatedBytes }, 'commitlog recovery: truncated a torn or corrupt tail')
    }
    break
  }
  topics.writeOut()
}

const SEGMENT_END_FRAME = ((): Buffer => { const b = Buffer.alloc(SEGMENT_END_BYTES); writeSegmentEnd(b, 0); return b })()

// Ends the recovered tail segment with an end-of-segment marker (fsynced), so an offset gap can
// follow it: a segment's bytes always end with a marker where the next segment does not start
// right after them.
function sealForGap (dir: string, tail: Segment): void {
  const fd = openSync(tail.path, 'r+')
  try {
    writeSync(fd, SEGMENT_END_FRAME, 0, SEGMENT_END_BYTES, tail.end - tail.base)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  tail.end += SEGMENT_END_BYTES
  tail.sealed = true
  // The last record's offset is not known without a scan: the time index then ends with its
  // last periodic entry (lookups scan forward from it; retention uses its last timestamp).
  tail.time.seal(-1, tail.time.lastTs, tail.end)
  tail.time.save(join(dir, timeIndexName(tail.base)))
}
