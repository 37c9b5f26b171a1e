// Per-topic index: for each topic a file of fixed-width entries, so entry i (the topic's i-th
// record) is at byte i * 20 and a reader starts at a topic offset in O(1), at a time in O(log n).
//
//   index/topics      registry: repeated (u16 LE length | UTF-8 topic); a topic's id is its
//                     position in this file
//   index/<id>.tidx   entries: logOffset u64 LE | frameBytes u32 LE | timestamp u64 LE  (20 B)
//
// Index files are derived data: appends go to a small in-memory tail per topic (no syscall per
// append) and reach the topic's file in one write of many entries: when the tail holds
// TAIL_WRITE_ENTRIES, when its oldest entry is older than MAX_TAIL_AGE_MS (a few topics per
// append, oldest first, so no write-out of every topic at once stalls the event loop), when all
// tails together hold MAX_PENDING_ENTRIES, before a lookup of that topic, and at close. They are
// never fsynced on the hot path; checkpoints record the log offset below which every entry is in
// its file (`firstPendingOffset`), and recovery rebuilds them from the log from there on. With
// 10,000+ topics (one per device) we keep only a bounded cache of open file descriptors.
import {
  closeSync, ftruncateSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, rmSync,
  statSync, writeSync, appendFileSync, existsSync, constants
} from 'node:fs'
import { join } from 'node:path'
import { putU32, readU48, writeU48 } from './format.js'

export const TOPIC_ENTRY_BYTES = 20
const REGISTRY = 'topics'
// Open index fds kept at once: an eighth of the process's soft limit on open files, between 64
// and 1,024 (the default ulimit of 1,024 gives 128; the systemd units' 65,536 give 1,024), so
// sockets keep the rest. A topic without an open fd costs an open + fstat + close at each write
// of its tail, and most fleets have more topics than 64 (one or a few per device).
// Read once, when the first index fd is opened (not at module load: processes that import the
// commitlog without opening one, e.g. the CLI's other commands, read nothing).
let maxOpenIndexFds = 0
export function maxOpenIndexFileDescriptors (): number {
  if (maxOpenIndexFds === 0) maxOpenIndexFds = Math.min(1024, Math.max(64, Math.floor(softOpenFilesLimit() / 8)))
  return maxOpenIndexFds
}

// The soft RLIMIT_NOFILE from /proc/self/limits (Linux); 1,024 (the usual default) where that
// file is missing or unreadable. Node has no API for it.
function softOpenFilesLimit (): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    if (m === null) return 1024
    return m[1] === 'unlimited' ? 1_048_576 : Number(m[1])
  } catch {
    return 1024
  }
}
// A topic's tail is written once it holds this many entries (1,280 B): a busy topic costs one
// write per 64 appends. (Before: one shared journal of 2,048 entries written out whole, one write
// per topic in it: with one topic per device, nearly one write, often with an open and a close,
// per append, and a stall of tens of ms per write-out; 80k appends/s with 10,000 topics.)
const TAIL_WRITE_ENTRIES = 64
// A tail's oldest entry waits at most about this long (record time) before it is written: bounds
// how far a checkpoint's indexedOffset trails the log, i.e. what recovery rescans.
const MAX_TAIL_AGE_MS = 2_000
// All tails together (memory bound, ~1.3 MB of entries): past this, each append writes oldest
// tails until it is back under it.
const MAX_PENDING_ENTRIES = 65_536
// Tails written per append by the age and memory rules, at most: keeps each append's share of
// the work small (no write-out of every topic at once) while outpacing how fast tails turn old
// (each written tail held at least one entry, and each append adds one).
const WRITES_PER_APPEND = 4
const INITIAL_TAIL_ENTRIES = 4

export class TopicState {
  readonly id: number
  readonly name: string
  readonly bytes: Buffer
  // Entries in total (file + tail): the next record's topic offset.
  count: number
  // Entries already in the file.
  onDisk: number
  // Entries [onDisk, count) encoded, not yet in the file (grows by doubling up to
  // TAIL_WRITE_ENTRIES entries).
  tail: Buffer | null = null
  // Log offset and record time of the first tail entry (when count > onDisk).
  tailFirstOffset = 0
  tailFirstTs = 0

  constructor (id: number, name: string, bytes: Buffer, onDisk: number) {
    this.id = id
    this.name = name
    this.bytes = bytes
    this.count = onDisk
    this.onDisk = onDisk
  }
}

export interface TopicEntry {
  logOffset: number
  frameBytes: number
  timestampMs: number
}

export class TopicIndex {
  private readonly dir: string
  private readonly byName = new Map<string, TopicState>()
  private readonly byId: TopicState[] = []
  private readonly fds = new Map<number, number>() // id -> fd, insertion order = LRU order
  // Registry records of new topics not yet in the registry file: registryPending[registryHead..]
  // (a head index, so registering a few at a time does not copy the rest).
  private registryPending: Buffer[] = []
  private registryHead = 0
  // Topics with a tail, oldest first entry first (appends come in log order, so a topic joins at
  // the end when its tail starts). Parallel arrays with a head index: the topic and the log offset
  // its tail started at. An entry is stale (skipped) once that tail was written: the topic has no
  // tail, or a later one (a tail's first offset is never reused).
  private queueTopic: TopicState[] = []
  private queueFirstOffset: number[] = []
  private queueHead = 0
  private pending = 0
  private readonly entryBuf = Buffer.alloc(TOPIC_ENTRY_BYTES)

  constructor (dir: string) {
    this.dir = dir
  }

  // Loads the registry and each topic's entry count. Returns false when the index is unusable
  // (missing registry while segments exist is decided by the caller; missing files here).
  load (): { ok: boolean } {
    mkdirSync(this.dir, { recursive: true })
    const regPath = join(this.dir, REGISTRY)
    if (!existsSync(regPath)) return { ok: false }
    const reg = readFileSync(regPath)
    let p = 0
    let ok = true
    while (p + 2 <= reg.length) {
      const len = reg.readUInt16LE(p)
      if (p + 2 + len > reg.length) break // torn tail of the registry: those topics get rebuilt
      const name = reg.toString('utf8', p + 2, p + 2 + len)
      p += 2 + len
      const id = this.byId.length
      let onDisk = 0
      try {
        onDisk = Math.floor(statSync(this.filePath(id)).size / TOPIC_ENTRY_BYTES)
      } catch {
        ok = false // a registered topic's file is gone
      }
      const t = new TopicState(id, name, Buffer.from(name, 'utf8'), onDisk)
      this.byId.push(t)
      this.byName.set(name, t)
    }
    return { ok }
  }

  // Deletes every index file (before a full rebuild).
  reset (): void {
    this.closeFds()
    rmSync(this.dir, { recursive: true, force: true })
    mkdirSync(this.dir, { recursive: true })
    this.byName.clear()
    this.byId.length = 0
    this.registryPending = []
    this.registryHead = 0
    this.clearQueue()
    this.pending = 0
  }

  get topicCount (): number { return this.byId.length }

  get (name: string): TopicState | undefined { return this.byName.get(name) }

  getOrCreate (name: string): TopicState {
    let t = this.byName.get(name)
    if (t === undefined) {
      const bytes = Buffer.from(name, 'utf8')
      t = new TopicState(this.byId.length, name, bytes, 0)
      this.byId.push(t)
      this.byName.set(name, t)
      const rec = Buffer.allocUnsafe(2 + bytes.length)
      rec.writeUInt16LE(bytes.length, 0)
      bytes.copy(rec, 2)
      this.registryPending.push(rec)
    }
    return t
  }

  // Hot path: the entry goes into the topic's tail; a write only when a rule above says so.
  add (t: TopicState, logOffset: number, frameBytes: number, timestampMs: number): number {
    const n = t.count - t.onDisk
    let tail = t.tail
    if (n === 0) {
      t.tailFirstOffset = logOffset
      t.tailFirstTs = timestampMs
      this.queueTopic.push(t)
      this.queueFirstOffset.push(logOffset)
    }
    if (tail === null || (n + 1) * TOPIC_ENTRY_BYTES > tail.length) {
      const grown = Buffer.allocUnsafe(Math.max(INITIAL_TAIL_ENTRIES, 2 * n) * TOPIC_ENTRY_BYTES)
      if (tail !== null) tail.copy(grown, 0, 0, n * TOPIC_ENTRY_BYTES)
      tail = grown
      t.tail = grown
    }
    const at = n * TOPIC_ENTRY_BYTES
    writeU48(tail, logOffset, at)
    putU32(tail, at + 8, frameBytes)
    writeU48(tail, timestampMs, at + 12)
    this.pending++
    const topicOffset = t.count++
    if (n + 1 === TAIL_WRITE_ENTRIES) this.writeTail(t)
    if (this.pending > MAX_PENDING_ENTRIES) this.writeOldest(MAX_PENDING_ENTRIES, Infinity, WRITES_PER_APPEND)
    else this.writeOldest(0, timestampMs - MAX_TAIL_AGE_MS, WRITES_PER_APPEND)
    return topicOffset
  }

  get pendingEntries (): number { return this.pending }

  // Log offset below which every entry is in its file (Infinity: nothing pending). A checkpoint's
  // indexedOffset may not pass it.
  get firstPendingOffset (): number {
    const t = this.oldestQueued()
    return t === undefined ? Infinity : t.tailFirstOffset
  }

  // Writes every tail and the registry additions to the files (page cache; no fsync).
  writeOut (): void {
    this.writeRegistry()
    this.writeOldest(0, Infinity, Infinity)
  }

  // Writes the oldest tails (by first entry) while more than `keepPending` entries are pending
  // and the oldest tail's first entry is at or before `olderThanTs`, at most `maxTopics` of them.
  private writeOldest (keepPending: number, olderThanTs: number, maxTopics: number): void {
    let written = 0
    while (written < maxTopics && this.pending > keepPending) {
      const t = this.oldestQueued()
      if (t === undefined || t.tailFirstTs > olderThanTs) break
      this.writeTail(t)
      written++
    }
  }

  // The topic of the oldest live queue entry, dropping stale ones from the head.
  private oldestQueued (): TopicState | undefined {
    const topics = this.queueTopic
    const firstOffsets = this.queueFirstOffset
    let h = this.queueHead
    while (h < topics.length) {
      const t = topics[h] as TopicState
      if (t.count > t.onDisk && t.tailFirstOffset === firstOffsets[h]) break
      h++
    }
    this.queueHead = h
    if (h === topics.length) { this.clearQueue(); return undefined }
    // Compact now and then so the arrays do not grow without bound.
    if (h > 4096 && h * 2 > topics.length) {
      this.queueTopic = topics.slice(h)
      this.queueFirstOffset = firstOffsets.slice(h)
      this.queueHead = 0
    }
    return topics[this.queueHead]
  }

  // One write of topic t's tail at the end of its file (the registry first, so a topic's file
  // never exists for an id the registry does not have yet).
  private writeTail (t: TopicState): void {
    const n = t.count - t.onDisk
    if (n === 0) return
    this.writeRegistry(t.id)
    const tail = t.tail as Buffer
    const fd = this.fd(t.id)
    const end = n * TOPIC_ENTRY_BYTES
    const filePos = t.onDisk * TOPIC_ENTRY_BYTES
    let done = 0
    while (done < end) done += writeSync(fd, tail, done, end - done, filePos + done)
    t.onDisk = t.count
    this.pending -= n
  }

  // Registers new topics up to id `upTo` (ids are positions in the registry, so in order): each
  // one's file is created (empty) before its name is appended, because load() takes a registered
  // topic without a file for a damaged index (full rebuild). Only up to the topic being written:
  // creating a file cost ~0.76 ms on this machine's disk (a reopen ~4 us), so a storm of new
  // topics (a fleet connecting) is created a few per append, as their tails are written, not all
  // in one stall.
  private writeRegistry (upTo = Infinity): void {
    const pending = this.registryPending.length - this.registryHead
    const firstPending = this.byId.length - pending
    const count = Math.min(pending, upTo - firstPending + 1)
    if (count <= 0) return
    for (let id = firstPending; id < firstPending + count; id++) this.fd(id)
    const head = this.registryHead
    appendFileSync(join(this.dir, REGISTRY), Buffer.concat(this.registryPending.slice(head, head + count)))
    this.registryHead = head + count
    if (this.registryHead === this.registryPending.length) {
      this.registryPending = []
      this.registryHead = 0
    } else if (this.registryHead > 1024 && this.registryHead * 2 > this.registryPending.length) {
      this.registryPending = this.registryPending.slice(this.registryHead)
      this.registryHead = 0
    }
  }

  entry (t: TopicState, i: number, out: TopicEntry): TopicEntry {
    if (i >= t.onDisk) this.writeTail(t)
    const fd = this.fd(t.id)
    readSync(fd, this.entryBuf, 0, TOPIC_ENTRY_BYTES, i * TOPIC_ENTRY_BYTES)
    out.logOffset = readU48(this.entryBuf, 0)
    out.frameBytes = this.entryBuf.readUInt32LE(8)
    out.timestampMs = readU48(this.entryBuf, 12)
    return out
  }

  // Entries [from, from + n) as a buffer of 20-byte entries.
  entries (t: TopicState, from: number, n: number): Buffer {
    if (from + n > t.onDisk) this.writeTail(t)
    const buf = Buffer.allocUnsafe(n * TOPIC_ENTRY_BYTES)
    const got = readSync(this.fd(t.id), buf, 0, buf.length, from * TOPIC_ENTRY_BYTES)
    return buf.subarray(0, got - (got % TOPIC_ENTRY_BYTES))
  }

  // First topic offset whose entry satisfies `field >= value` (binary search, O(log n) reads).
  lowerBound (t: TopicState, field: 'logOffset' | 'timestampMs', value: number): number {
    const e: TopicEntry = { logOffset: 0, frameBytes: 0, timestampMs: 0 }
    let lo = 0
    let hi = t.count
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2)
      if (this.entry(t, mid, e)[field] < value) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  // Recovery: forget entries pointing at or past `logOffset` in every topic.
  truncateFrom (logOffset: number): void {
    this.writeOut()
    for (const t of this.byId) {
      if (t.count === 0) continue
      const keep = this.lowerBound(t, 'logOffset', logOffset)
      if (keep < t.count) {
        ftruncateSync(this.fd(t.id), keep * TOPIC_ENTRY_BYTES)
        t.count = keep
        t.onDisk = keep
      }
    }
  }

  // Opens (bounded LRU cache) and drops a partial trailing entry left by a crash mid-write.
  private fd (id: number): number {
    let fd = this.fds.get(id)
    if (fd !== undefined) {
      this.fds.delete(id) // re-insert: most recently used last
      this.fds.set(id, fd)
      return fd
    }
    if (this.fds.size >= maxOpenIndexFileDescriptors()) {
      const [oldId, oldFd] = this.fds.entries().next().value as [number, number]
      this.fds.delete(oldId)
      closeSync(oldFd)
    }
    // Not O_APPEND: entries are written at explicit positions (i * 20).
    fd = openSync(this.filePath(id), constants.O_RDWR | constants.O_CREAT, 0o644)
    const size = fstatSync(fd).size
    if (size % TOPIC_ENTRY_BYTES !== 0) ftruncateSync(fd, size - (size % TOPIC_ENTRY_BYTES))
    this.fds.set(id, fd)
    return fd
  }

  private filePath (id: number): string {
    return join(this.dir, `${id}.tidx`)
  }

  private clearQueue (): void {
    this.queueTopic = []
    this.queueFirstOffset = []
    this.queueHead = 0
  }

  closeFds (): void {
    for (const fd of this.fds.values()) closeSync(fd)
    this.fds.clear()
  }

  close (): void {
    this.writeOut()
    this.closeFds()
  }
}
