// Sparse time index of one segment: an entry (timestamp, offset) for the first record of the
// segment and then for the first record at least TIME_INDEX_INTERVAL_BYTES after the previous
// entry, plus the segment's last record when it is sealed. Timestamps in the log never go
// backwards, so "first record with timestamp >= t" is a binary search over entries followed by a
// forward scan of at most one interval.
//
// File `<base>.timeindex` (derived data, rewritten whole at seal, checkpoint and close):
//   0  magic       u32 LE  TIME_INDEX_MAGIC
//   4  flags       u32 LE  bit 0: segment sealed (ends with an end-of-segment marker)
//   8  coveredEnd  u64 LE  global offset up to which this index covers the segment
//  16  lastTs      u64 LE  timestamp of the last record covered (0 if none)
//  24  count       u32 LE  number of entries
//  28  crc32       u32 LE  over the entries, then over bytes [0, 28)
//  32  entries     count x (timestamp u64 LE | offset u64 LE)
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { crc32 } from 'node:zlib'
import { readU48, writeU48 } from './format.js'

export const TIME_INDEX_MAGIC = 0x58495454 // "TTIX"
const HEADER = 32
const ENTRY = 16
// One entry per 64 KiB of log: 1,024 entries (16 KiB of memory) per 64 MiB segment, and a lookup
// scans at most ~64 KiB of records after the binary search.
export const TIME_INDEX_INTERVAL_BYTES = 64 * 1024

export class SegmentTimeIndex {
  readonly base: number
  timestamps: number[] = []
  offsets: number[] = []
  sealed = false
  coveredEnd: number
  lastTs = 0
  nextEntryAt: number

  constructor (base: number) {
    this.base = base
    this.coveredEnd = base
    this.nextEntryAt = base
  }

  // Called for every record in offset order.
  add (offset: number, timestampMs: number, nextOffset: number): void {
    if (offset >= this.nextEntryAt) {
      this.timestamps.push(timestampMs)
      this.offsets.push(offset)
      this.nextEntryAt = offset + TIME_INDEX_INTERVAL_BYTES
    }
    this.lastTs = timestampMs
    this.coveredEnd = nextOffset
  }

  // Seals with the segment's last record as the final entry (exact age for retention).
  seal (lastOffset: number, lastTs: number, end: number): void {
    if (lastOffset >= 0 && this.offsets[this.offsets.length - 1] !== lastOffset) {
      this.timestamps.push(lastTs)
      this.offsets.push(lastOffset)
    }
    this.sealed = true
    this.coveredEnd = end
  }

  // Forgets entries at or past `offset` (recovery rescans from there).
  truncate (offset: number): void {
    let n = this.offsets.length
    while (n > 0 && (this.offsets[n - 1] as number) >= offset) n--
    this.offsets.length = n
    this.timestamps.length = n
    this.sealed = false
    this.coveredEnd = Math.min(this.coveredEnd, Math.max(offset, this.base))
    this.nextEntryAt = n === 0 ? this.base : (this.offsets[n - 1] as number) + TIME_INDEX_INTERVAL_BYTES
    this.lastTs = n === 0 ? 0 : this.timestamps[n - 1] as number
  }

  // Offset to start scanning from for the first record with timestamp >= ts: the last entry
  // whose timestamp is < ts (or the segment start).
  scanStartFor (ts: number): number {
    let lo = 0
    let hi = this.timestamps.length // first index with timestamp >= ts
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((this.timestamps[mid] as number) < ts) lo = mid + 1
      else hi = mid
    }
    return lo === 0 ? this.base : this.offsets[lo - 1] as number
  }

  encode (): Buffer {
    const n = this.offsets.length
    const buf = Buffer.alloc(HEADER + n * ENTRY)
    buf.writeUInt32LE(TIME_INDEX_MAGIC, 0)
    buf.writeUInt32LE(this.sealed ? 1 : 0, 4)
    writeU48(buf, this.coveredEnd, 8)
    writeU48(buf, this.lastTs, 16)
    buf.writeUInt32LE(n, 24)
    for (let i = 0; i < n; i++) {
      writeU48(buf, this.timestamps[i] as number, HEADER + i * ENTRY)
      writeU48(buf, this.offsets[i] as number, HEADER + i * ENTRY + 8)
    }
    buf.writeUInt32LE(crc32(buf.subarray(0, 28), crc32(buf.subarray(HEADER))), 28)
    return buf
  }

  // Write-then-rename so a crash leaves the old or the new file, never half of one.
  save (path: string): void {
    writeFileSync(path + '.tmp', this.encode())
    renameSync(path + '.tmp', path)
  }

  static load (path: string, base: number): SegmentTimeIndex | null {
    let buf: Buffer
    try { buf = readFileSync(path) } catch { return null }
    if (buf.length < HEADER || buf.readUInt32LE(0) !== TIME_INDEX_MAGIC) return null
    const n = buf.readUInt32LE(24)
    if (buf.length !== HEADER + n * ENTRY) return null
    if (buf.readUInt32LE(28) !== crc32(buf.subarray(0, 28), crc32(buf.subarray(HEADER)))) return null
    const idx = new SegmentTimeIndex(base)
    idx.sealed = (buf.readUInt32LE(4) & 1) !== 0
    idx.coveredEnd = readU48(buf, 8)
    idx.lastTs = readU48(buf, 16)
    for (let i = 0; i < n; i++) {
      idx.timestamps.push(readU48(buf, HEADER + i * ENTRY))
      idx.offsets.push(readU48(buf, HEADER + i * ENTRY + 8))
    }
    idx.nextEntryAt = n === 0 ? base : (idx.offsets[n - 1] as number) + TIME_INDEX_INTERVAL_BYTES
    return idx
  }
}
