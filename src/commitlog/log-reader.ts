// The commitlog's read side: records by offset (crossing segments and offset gaps), raw bytes for
// raw-read.ts, one record per topic index entry, and the lookups by topic offset and by time.
//
// Separate from commit-log.ts because reading needs only the segment list, the fds to read them
// with and where the log ends, while CommitLog owns the writes, fsyncs and when segments come and
// go. CommitLog hands those over explicitly: the segment list (the same array, which it keeps
// updating: rolls push, retention shifts), the active segment and its fd on every roll
// (setActive), and a host for what it keeps deciding itself: the appended and written ends, the
// drain of pending writes (a read that reaches past `written` writes the buffers out first, so
// reads see every appended record) and the check that the log is not closed. This file owns the
// LRU of read fds of sealed segments: CommitLog asks it to close one when retention deletes a
// segment (forgetSegment) and all of them at close (closeFds).
// Hot path (the bridge and persistent-session replay call read()): the host is one object made
// at open, so a read costs no allocation beyond the chunk buffers and the records themselves.
import { closeSync, openSync, readSync } from 'node:fs'
import { tributaryError } from '../errors/index.js'
import { HEADER_BYTES, decodeRecord, newProbe, probeFrame } from './format.js'
import type { Segment } from './segment.js'
import { type TopicIndex, TOPIC_ENTRY_BYTES } from './topic-index.js'
import type { LogRecord, ReadBatch, ReadLimits } from './types.js'

// Default read limits: a batch of at most this many records / bytes (bounded memory per read).
const DEFAULT_READ_MAX_RECORDS = 1000
const DEFAULT_READ_MAX_BYTES = 1024 * 1024
// Sealed segments kept open for reading at once (readers are usually near the tail).
const MAX_READ_FDS = 8

// What the reader asks of the log that owns it (CommitLog; made once at open).
export interface LogReaderHost {
  // The appended end (endOffset): reads stop there.
  end: () => number
  // The written end (writtenOffset): the files hold everything below it.
  written: () => number
  // Writes every appended byte to the files now (bytes past `written` are only in buffers).
  drainWrites: () => void
  // Throws once the log is closed (its fds are closed too).
  assertReadable: () => void
}

export class LogReader {
  private readonly segments: Segment[]
  private readonly maxRecordBytes: number
  private readonly topics: TopicIndex
  private readonly host: LogReaderHost
  // The segment appends go to, read through the writer's fd; sealed ones through readFds.
  private active: Segment | null = null
  private activeFd = -1
  // Read fds of sealed segments by base, oldest opened first (Map order: the LRU evicts the first).
  private readonly readFds = new Map<number, number>()
  // readOne's frame probe, reused (a topic read calls readOne per record; nothing is kept across calls).
  private readonly oneProbe = newProbe()

  // `segments`: CommitLog's list, in offset order, the last one the active segment.
  constructor (segments: Segment[], maxRecordBytes: number, topics: TopicIndex, host: LogReaderHost) {
    this.segments = segments
    this.maxRecordBytes = maxRecordBytes
    this.topics = topics
    this.host = host
  }

  get startOffset (): number { return (this.segments[0] as Segment).base }

  // A new active segment (open, roll): it is read through the fd the writer writes it with.
  setActive (seg: Segment, fd: number): void {
    this.active = seg
    this.activeFd = fd
  }

  // Retention deletes `seg`: its read fd (if open) is closed first.
  forgetSegment (seg: Segment): void {
    const fd = this.readFds.get(seg.base)
    if (fd !== undefined) { closeSync(fd); this.readFds.delete(seg.base) }
  }

  // At close: every read fd (the active segment's fd is CommitLog's to close).
  closeFds (): void {
    for (const fd of this.readFds.values()) closeSync(fd)
    this.readFds.clear()
  }

  // ---------------------------------------------------------------- by log offset

  // Records from `offset` in log order, crossing segments. `limits.maxOffset` stops before that
  // offset (a replicator passes durableOffset to ship only what survives a crash).
  read (offset: number, limits?: ReadLimits): ReadBatch {
    this.host.assertReadable()
    const maxRecords = limits?.maxRecords ?? DEFAULT_READ_MAX_RECORDS
    const maxBytes = limits?.maxBytes ?? DEFAULT_READ_MAX_BYTES
    const stop = Math.min(this.host.end(), limits?.maxOffset ?? Infinity)
    const records: LogRecord[] = []
    if (offset < this.startOffset) return { status: 'truncated', records, nextOffset: this.startOffset }
    if (offset >= stop) return { status: 'end', records, nextOffset: offset }
    if (stop > this.host.written()) this.host.drainWrites()
    const probe = newProbe()
    let pos = offset
    let bytes = 0
    while (records.length < maxRecords && pos < stop) {
      const seg = this.segmentFor(pos)
      if (seg === null) break
      if (pos >= seg.end) {
        // Past a sealed segment's end: across an offset gap (if any) to the next segment.
        const next = this.skipGap(pos)
        if (next === pos) break
        pos = next
        continue
      }
      const segEnd = Math.min(seg.end, stop)
      if (pos >= segEnd) break
      const want = Math.min(segEnd - pos, Math.max(maxBytes - bytes, HEADER_BYTES))
      const chunk = Buffer.allocUnsafe(want)
      const got = this.readAt(seg, pos, chunk, want)
      let at = 0
      while (records.length < maxRecords) {
        probeFrame(chunk, at, got, this.maxRecordBytes, probe)
        if (probe.check === 'record') {
          const d = decodeRecord(chunk, at)
          records.push({
            offset: pos + at, nextOffset: pos + at + probe.length, timestampMs: d.timestampMs, topic: d.topic,
            payload: d.payload, qos: d.qos, retain: d.retain, clientId: d.clientId
          })
          at += probe.length
          bytes += probe.length
        } else if (probe.check === 'segment-end') {
          at = seg.end - pos // continue in the next segment
          break
        } else if (probe.check === 'short') {
          if (at === 0) {
            // The first record is larger than the budget: read exactly it (progress guaranteed).
            const need = probe.length
            if (need > segEnd - pos) throw this.corrupt(seg, pos)
            const one = Buffer.allocUnsafe(need)
            this.readAt(seg, pos, one, need)
            if (probeFrame(one, 0, need, this.maxRecordBytes, probe).check !== 'record') throw this.corrupt(seg, pos)
            const d = decodeRecord(one, 0)
            records.push({
              offset: pos, nextOffset: pos + need, timestampMs: d.timestampMs, topic: d.topic,
              payload: d.payload, qos: d.qos, retain: d.retain, clientId: d.clientId
            })
            at = need
            bytes += need
          }
          break
        } else {
          throw this.corrupt(seg, pos + at)
        }
      }
      pos += at
      if (bytes >= maxBytes) break
    }
    return { status: records.length > 0 ? 'ok' : 'end', records, nextOffset: pos }
  }

  // Raw bytes of the log from `offset` into `into` at `at`: at most `len` bytes, never past the
  // end of `offset`'s segment (end-of-segment marker included) nor `maxOffset`. No framing check:
  // raw-read.ts walks and checks the frames. Returns the bytes copied; -1 when `offset` was
  // deleted by retention (the caller continues at startOffset); 0 at `maxOffset` / the end.
  readBytes (offset: number, into: Buffer, at: number, len: number, maxOffset: number): number {
    this.host.assertReadable()
    if (offset < this.startOffset) return -1
    const stop = Math.min(this.host.end(), maxOffset)
    if (offset >= stop) return 0
    if (stop > this.host.written()) this.host.drainWrites()
    const seg = this.segmentFor(offset)
    if (seg === null) return 0
    // 0 as well when `offset` lies in an offset gap (raw-read.ts crosses it with skipGap).
    const n = Math.min(len, Math.min(seg.end, stop) - offset)
    return n <= 0 ? 0 : this.readAt(seg, offset, into.subarray(at, at + n), n)
  }

  private corrupt (seg: Segment, offset: number): Error {
    return tributaryError('TRIB_ERR_LOG_CORRUPT', `bad record at offset ${offset} in ${seg.path}`, { offset, path: seg.path })
  }

  // The segment with the greatest base <= offset. An offset in an offset gap (at or past a sealed
  // segment's end, before the next segment's base: see recovery.ts) gets the segment before the gap.
  private segmentFor (offset: number): Segment | null {
    const i = this.segmentIndex(offset)
    return i < 0 ? null : this.segments[i] as Segment
  }

  private segmentIndex (offset: number): number {
    const segs = this.segments
    let lo = 0
    let hi = segs.length - 1
    if (hi < 0 || offset < (segs[0] as Segment).base) return -1
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if ((segs[mid] as Segment).base <= offset) lo = mid
      else hi = mid - 1
    }
    return lo
  }

  // Bytes of offset gaps inside [from, to): a lag measured in offsets subtracts them (a gap holds
  // no record). Walks the segment list (not a hot path: metrics and logs).
  gapBytesIn (from: number, to: number): number {
    const segs = this.segments
    let gaps = 0
    for (let i = 1; i < segs.length; i++) {
      const a = Math.max((segs[i - 1] as Segment).end, from)
      const b = Math.min((segs[i] as Segment).base, to)
      if (b > a) gaps += b - a
    }
    return gaps
  }

  // Where a reader at `offset` continues: the next segment's base when `offset` lies at or past a
  // sealed segment's end (an offset gap left by a dirty recovery; without a gap the next base is
  // that end), else `offset` itself. No record lies in a gap.
  skipGap (offset: number): number {
    const i = this.segmentIndex(offset)
    if (i < 0 || i === this.segments.length - 1) return offset
    const seg = this.segments[i] as Segment
    return offset < seg.end ? offset : (this.segments[i + 1] as Segment).base
  }

  private readAt (seg: Segment, offset: number, into: Buffer, len: number): number {
    const fd = seg === this.active ? this.activeFd : this.readFd(seg)
    let got = 0
    while (got < len) {
      const n = readSync(fd, into, got, len - got, offset - seg.base + got)
      if (n === 0) break
      got += n
    }
    return got
  }

  private readFd (seg: Segment): number {
    let fd = this.readFds.get(seg.base)
    if (fd !== undefined) return fd
    if (this.readFds.size >= MAX_READ_FDS) {
      const [base, old] = this.readFds.entries().next().value as [number, number]
      this.readFds.delete(base)
      closeSync(old)
    }
    fd = openSync(seg.path, 'r')
    this.readFds.set(seg.base, fd)
    return fd
  }

  // Reads one record whose position and size are known (from a topic index entry).
  private readOne (offset: number, frameBytes: number): LogRecord | null {
    if (offset + frameBytes > this.host.written()) this.host.drainWrites()
    const seg = this.segmentFor(offset)
    if (seg === null) return null
    const b = Buffer.allocUnsafe(frameBytes)
    const got = this.readAt(seg, offset, b, frameBytes)
    if (probeFrame(b, 0, got, this.maxRecordBytes, this.oneProbe).check !== 'record') throw this.corrupt(seg, offset)
    const d = decodeRecord(b, 0)
    return {
      offset, nextOffset: offset + frameBytes, timestampMs: d.timestampMs, topic: d.topic,
      payload: d.payload, qos: d.qos, retain: d.retain, clientId: d.clientId
    }
  }

  // ---------------------------------------------------------------- by topic offset, by time

  // Records of one topic from a topic offset (O(1) to find the start). `nextOffset` in the result
  // is a topic offset. Status 'truncated': retention deleted that record; nextOffset is the first
  // retained topic offset.
  readTopic (topic: string, topicOffset: number, limits?: ReadLimits): ReadBatch {
    this.host.assertReadable()
    const t = this.topics.get(topic)
    const records: LogRecord[] = []
    if (t === undefined || topicOffset >= t.count) return { status: 'end', records, nextOffset: topicOffset }
    const maxRecords = limits?.maxRecords ?? DEFAULT_READ_MAX_RECORDS
    const maxBytes = limits?.maxBytes ?? DEFAULT_READ_MAX_BYTES
    const stop = limits?.maxOffset ?? Infinity
    const n = Math.min(maxRecords, t.count - topicOffset)
    const entries = this.topics.entries(t, topicOffset, n)
    const start = this.startOffset
    let bytes = 0
    let i = 0
    for (; i * TOPIC_ENTRY_BYTES < entries.length; i++) {
      const logOffset = entries.readUInt32LE(i * 20) + entries.readUInt32LE(i * 20 + 4) * 0x1_0000_0000
      const size = entries.readUInt32LE(i * 20 + 8)
      if (logOffset < start) {
        if (i === 0) {
          return { status: 'truncated', records, nextOffset: this.topics.lowerBound(t, 'logOffset', start) }
        }
        break
      }
      if (logOffset + size > stop) break
      if (i > 0 && bytes + size > maxBytes) break
      const rec = this.readOne(logOffset, size)
      if (rec === null) break
      records.push(rec)
      bytes += size
    }
    return { status: records.length > 0 ? 'ok' : 'end', records, nextOffset: topicOffset + i }
  }

  // Offset of the first record with timestamp >= ts (endOffset if none; startOffset if all are).
  offsetForTime (ts: number): number {
    const segs = this.segments
    let i = 0
    while (i < segs.length && (segs[i] as Segment).time.lastTs < ts) i++
    if (i === segs.length) return this.host.end()
    const seg = segs[i] as Segment
    let pos = seg.time.scanStartFor(ts)
    while (true) {
      const batch = this.read(pos, { maxRecords: 256 })
      if (batch.records.length === 0) return this.host.end()
      for (const r of batch.records) if (r.timestampMs >= ts) return r.offset
      pos = batch.nextOffset
    }
  }
}
