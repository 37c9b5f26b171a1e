// Per-topic index: for each topic a file of fixed-width entries, so entry i (the topic's i-th
// record) is at byte i * 20 and a reader starts at a topic offset in O(1), at a time in O(log n).
//
//   index/topics      registry: repeated (u16 LE length | UTF-8 topic); a topic's id is its
//                     position in this file
//   index/<id>.tidx   entries: logOffset u64 LE | frameBytes u32 LE | timestamp u64 LE  (20 B)
//
// Index files are derived data: appends go to an in-memory journal (no syscall per append),
// written out in one pass per topic when the journal fills, before a lookup, at checkpoints and
// at close. They are never fsynced on the hot path; recovery rebuilds them from the log from the
// checkpoint's indexedOffset on. With 10,000+ topics (one per device) we keep only a bounded
// cache of open file descriptors.
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
// sockets keep the rest. A topic without an open fd costs an open + fstat + close at each
// journal write-out (up to 2,048 appends), and most fleets have more topics than 64 (one or a
// few per device).
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
// Journal entries held before they are written out (page cache, no fsync; the 5 s checkpoint
// writes out the rest). Small on purpose: a writeOut runs on the event loop, and one of a
// checkpoint's worth (25,000 entries at 5,000 msgs/s) took 6 to 9 ms, run too rarely to leave
// V8's interpreter; that stall alone delayed dozens of messages by several ms (edge QoS 1 p99).
// Batches of 2,048 keep the loop compiled and a call well under a millisecond with few topics
// (one write per topic per batch; with one topic per message it is one write per entry anyway).
const MAX_JOURNAL_ENTRIES = 2_048

export class TopicState {
  readonly id: number
  readonly name: string
  readonly bytes: Buffer
  // Entries in total (file + journal): the next record's topic offset.
  count: number
  // Entries already in the file.
  onDisk: number

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
  private registryPending: Buffer[] = []
  // Journal of entries not yet in their files (preallocated parallel typed arrays, ~50 KB:
  // no object and no allocation per entry).
  private readonly jTopic = new Uint32Array(MAX_JOURNAL_ENTRIES)
  private readonly jOffset = new Float64Array(MAX_JOURNAL_ENTRIES)
  private readonly jSize = new Uint32Array(MAX_JOURNAL_ENTRIES)
  private readonly jTs = new Float64Array(MAX_JOURNAL_ENTRIES)
  private jLen = 0
  private readonly entryBuf = Buffer.alloc(TOPIC_ENTRY_BYTES)
  // writeOut's scratch: per-topic slot counters and the encoded journal (40 KB, reused).
  private counts = new Uint32Array(1024)
  // writeOut's scratch: which topics were written in its first pass (fd already open); sized
  // with `counts`.
  private writtenScratch = new Uint8Array(1024)
  private readonly outBuf = Buffer.allocUnsafe(MAX_JOURNAL_ENTRIES * TOPIC_ENTRY_BYTES)

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
    this.clearJournal()
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

  // Hot path: one array push per field, no syscall.
  add (t: TopicState, logOffset: number, frameBytes: number, timestampMs: number): number {
    const j = this.jLen++
    this.jTopic[j] = t.id
    this.jOffset[j] = logOffset
    this.jSize[j] = frameBytes
    this.jTs[j] = timestampMs
    if (this.jLen === MAX_JOURNAL_ENTRIES) this.writeOut()
    return t.count++
  }

  get pendingEntries (): number { return this.jLen }

  // Writes the registry additions and the journal to the files (page cache; no fsync).
  writeOut (): void {
    if (this.registryPending.length > 0) {
      appendFileSync(join(this.dir, REGISTRY), Buffer.concat(this.registryPending))
      this.registryPending = []
    }
    const n = this.jLen
    if (n === 0) return
    // Group the journal by topic with a counting sort into one preallocated buffer (no Map, no
    // array per topic): count entries per topic, turn the counts into each topic's start in
    // `out`, encode every entry at its topic's next slot, then one write per topic.
    const topics = this.byId.length
    if (this.counts.length < topics + 1) {
      this.counts = new Uint32Array(Math.max(topics + 1, 2 * this.counts.length))
      this.writtenScratch = new Uint8Array(this.counts.length)
    }
    const counts = this.counts
    counts.fill(0, 0, topics + 1)
    const jTopic = this.jTopic
    for (let i = 0; i < n; i++) counts[(jTopic[i] as number) + 1]++
    for (let id = 0; id < topics; id++) counts[id + 1] = (counts[id + 1] as number) + (counts[id] as number)
    // counts[id] is now topic id's first slot; it advances while encoding, ending at the next
    // topic's first slot.
    const out = this.outBuf
    for (let i = 0; i < n; i++) {
      const id = jTopic[i] as number
      const at = (counts[id] as number) * TOPIC_ENTRY_BYTES
      counts[id] = (counts[id] as number) + 1
      writeU48(out, this.jOffset[i] as number, at)
      putU32(out, at + 8, this.jSize[i] as number)
      writeU48(out, this.jTs[i] as number, at + 12)
    }
    // counts[id] is now topic id's end slot; its start is the previous topic's end. Topics whose
    // index fd is open are written first, then the others: in plain id order, more active topics
    // than maxOpenIndexFileDescriptors() made the LRU miss on every one of them (a scan longer than the cache
    // evicts each fd just before it is needed again): with 100 topics, 100 open + fstat + close
    // per writeOut, a third of the commitlog bench's append time. Now only the topics that
    // cannot all stay open are reopened.
    const written = this.writtenScratch
    written.fill(0, 0, topics)
    for (let id = 0; id < topics; id++) {
      if (this.fds.has(id)) { this.writeTopicSlots(id, out); written[id] = 1 }
    }
    for (let id = 0; id < topics; id++) {
      if (written[id] === 0) this.writeTopicSlots(id, out)
    }
    this.clearJournal()
  }

  // Writes topic `id`'s slots of the grouped journal `out` (see writeOut) at the end of its file.
  private writeTopicSlots (id: number, out: Buffer): void {
    const from = id === 0 ? 0 : this.counts[id - 1] as number
    const to = this.counts[id] as number
    if (to === from) return
    const t = this.byId[id] as TopicState
    const fd = this.fd(id)
    const end = to * TOPIC_ENTRY_BYTES
    let done = from * TOPIC_ENTRY_BYTES
    const filePos = t.onDisk * TOPIC_ENTRY_BYTES - done
    while (done < end) done += writeSync(fd, out, done, end - done, filePos + done)
    t.onDisk += to - from
  }

  entry (t: TopicState, i: number, out: TopicEntry): TopicEntry {
    if (i >= t.onDisk) this.writeOut()
    const fd = this.fd(t.id)
    readSync(fd, this.entryBuf, 0, TOPIC_ENTRY_BYTES, i * TOPIC_ENTRY_BYTES)
    out.logOffset = readU48(this.entryBuf, 0)
    out.frameBytes = this.entryBuf.readUInt32LE(8)
    out.timestampMs = readU48(this.entryBuf, 12)
    return out
  }

  // Entries [from, from + n) as a buffer of 20-byte entries.
  entries (t: TopicState, from: number, n: number): Buffer {
    if (from + n > t.onDisk) this.writeOut()
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

  private clearJournal (): void {
    this.jLen = 0
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
