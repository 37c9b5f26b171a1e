// The commitlog: one append-only log for all topics, in segments, with group commit.
//
// Write path (no promise or syscall per append):
//   append()  -> frame encoded into the writer's fill buffer; offset assigned; callback queued
//   tick      -> (setImmediate, once per loop turn) if the pool is idle, the fill buffer is handed
//                to it: one positional fs.write in flight at a time (writer.ts), so the copy into
//                the page cache overlaps with framing on the event-loop thread
//   written   -> `written` advances as writes complete; 'none' callbacks fire; fsyncs may start
//   sync      -> fdatasync on the libuv pool, at most one in flight; covers everything written
//                before it started; callbacks fire in append order when their record is covered
// Reads see every appended record: a read that reaches past `written` drains the writer first.
import {
  closeSync, constants, fdatasync, fsync, ftruncateSync, fstatSync, mkdirSync, open, openSync, unlinkSync, writeFileSync, fsyncSync
} from 'node:fs'
import { join } from 'node:path'
import { tributaryError } from '../errors/index.js'
import type { Logger } from '../log/index.js'
import { writeCheckpoint } from './checkpoint.js'
import { DurableCallbacks } from './durable-callbacks.js'
import {
  CHECKPOINT_FILE, DIRTY_FILE, INDEX_DIR, acquireLock, releaseLock, segmentName, timeIndexName
} from './files.js'
import {
  HEADER_BYTES, MAX_CLIENT_ID_BYTES, MAX_TOPIC_BYTES, SEGMENT_END_BYTES, encodeRecord, writeSegmentEnd
} from './format.js'
import { LogReader } from './log-reader.js'
import { OffsetWaiters } from './offset-waiters.js'
import { recover } from './recovery.js'
import { Segment, scanSegment } from './segment.js'
import { SegmentTimeIndex } from './time-index.js'
import { TopicIndex, type TopicEntry } from './topic-index.js'
import { SegmentWriter, WRITE_BUFFER_BYTES } from './writer.js'
import type {
  AppendInput, AppendResult, CommitLogOptions, CommitLogStats, DurableCallback, FlushPolicy, ReadBatch,
  ReadLimits, RecoveryReport, RetentionDrop, RetentionReport
} from './types.js'

// Periodic checkpoint (writes the active time index, then the checkpoint): bounds
// how much of the log recovery must rescan after a crash.
const CHECKPOINT_INTERVAL_MS = 5_000
// Retention check period when no roll triggers it.
const RETENTION_INTERVAL_MS = 60_000
// Client ids cached as bytes; cleared when full (bounded memory with many devices).
const MAX_CLIENT_ID_CACHE = 16_384

type State = 'open' | 'failed' | 'closing' | 'closed'

// A rolled segment's fd, to be fsynced (then closed) once every byte up to `end` is written.
interface SealedFd { fd: number, end: number }

export class CommitLog {
  readonly recovery: RecoveryReport
  private readonly opts: CommitLogOptions
  private readonly log: Logger
  private readonly now: () => number
  private readonly dir: string
  private state: State = 'open'
  private failure: Error | null = null

  // In offset order; the last one is the active segment.
  private readonly segments: Segment[]
  private active!: Segment
  private activeFd = -1
  private readonly topics: TopicIndex
  // The read side (log-reader.ts): reads the segments above, owns the read fds of sealed ones.
  private readonly reader: LogReader

  // Offsets: end (appended), writer.written (in the page cache), durable (fsynced).
  private end = 0
  private durable = 0
  private lastTs = 0
  private lastRecordOffset = -1

  private writer!: SegmentWriter
  private readonly writeBufferBytes: number
  // After a failure the file is cut back to `written`, once no write is in flight any more.
  private truncatePending = false

  // Durable callbacks in append order (durable-callbacks.ts: no object per append).
  private readonly callbacks = new DurableCallbacks()
  // Promises waiting for an end to reach an offset (offset-waiters.ts). flush(): durableOffset
  // covers the offset; the others: the end has passed it.
  private readonly flushWaiters = new OffsetWaiters()
  private readonly dataWaiters = new OffsetWaiters()
  private readonly writtenWaiters = new OffsetWaiters()
  // Replicators waiting for replicableOffset to pass an offset (checked as writes and fsyncs end).
  private readonly replicaWaiters = new OffsetWaiters()
  // Replicate-ahead window (CommitLogOptions.replicateAheadBytes).
  private readonly aheadBytes: number
  private readonly fdatasync: (fd: number, callback: (err: Error | null) => void) => void

  private tickScheduled = false
  private syncing = false
  // minFsyncGapMs: when the last fsync round started (performance.now()), and the timer that
  // starts the next one once the gap has passed.
  private readonly minSyncGapMs: number
  private lastSyncStartedAt = -Infinity
  private gapTimer: NodeJS.Timeout | null = null
  private syncTarget = 0
  private syncActiveFd = -1
  private syncSealed: SealedFd[] = []
  private syncDir = false
  private syncStep = 0
  private pendingSealed: SealedFd[] = []
  private needDirSync = false
  private checkpointTimer: NodeJS.Timeout | null = null
  private retentionTimer: NodeJS.Timeout | null = null
  private retentionDue = false

  private readonly clientIds = new Map<string, Buffer>()
  private lastClientId = ''
  private lastClientIdBytes: Buffer = Buffer.alloc(0)
  private readonly readers = new Map<string, number>()
  private appendedRecords = 0
  private droppedRecords = 0

  private readonly onTick = (): void => { this.tick() }
  private readonly syncNow = (): void => { this.maybeSync() }
  private readonly onGapElapsed = (): void => { this.gapTimer = null; this.maybeSync() }
  private readonly nudgeNow = (): void => { this.nudgeReplicaWaiters() }
  private replicaFlushPending = false
  private readonly onReplicaFlushed = (): void => {
    this.replicaFlushPending = false
    if (this.replicaWaiters.length > 0) this.wakeReplicaWaiters()
  }
  private readonly onSealedSynced = (err: Error | null): void => { this.sealedSynced(err) }
  private readonly onActiveSynced = (err: Error | null): void => { this.activeSynced(err) }

  private constructor (opts: CommitLogOptions) {
    this.opts = opts
    this.log = opts.log
    this.now = opts.now ?? Date.now
    this.dir = opts.dir
    this.aheadBytes = opts.replicateAheadBytes ?? 0
    this.fdatasync = opts.fdatasync ?? fdatasync
    this.minSyncGapMs = opts.minFsyncGapMs ?? 0
    // A buffer holds at least one maximum record plus an end-of-segment marker.
    this.writeBufferBytes = Math.max(WRITE_BUFFER_BYTES, opts.maxRecordBytes + SEGMENT_END_BYTES)
    this.topics = new TopicIndex(join(opts.dir, INDEX_DIR))
    const recovered = recover({ dir: opts.dir, maxRecordBytes: opts.maxRecordBytes, aheadBytes: this.aheadBytes, topics: this.topics, log: this.log })
    this.segments = recovered.segments
    this.recovery = recovered.report
    this.reader = new LogReader(this.segments, opts.maxRecordBytes, this.topics, {
      end: () => this.end,
      written: () => this.writer.written,
      drainWrites: () => { this.drainWrites() },
      assertReadable: () => { if (this.state === 'closed') throw this.notOpenError() }
    })
    this.resumeAfterRecovery(recovered.report)
    this.writer = new SegmentWriter(this.writeBufferBytes, this.activeFd, this.active.base, this.end, {
      written: () => { this.onWritten() },
      failed: (err) => { this.fail(tributaryError('TRIB_ERR_LOG_IO', `write to ${this.dir} failed`, { dir: this.dir }, err)) }
    })
  }

  static async open (opts: CommitLogOptions): Promise<CommitLog> {
    validateOptions(opts)
    mkdirSync(opts.dir, { recursive: true })
    acquireLock(opts.dir)
    try {
      const log = new CommitLog(opts)
      log.startTimers()
      return log
    } catch (err) {
      releaseLock(opts.dir)
      throw err
    }
  }

  get startOffset (): number { return this.reader.startOffset }
  get endOffset (): number { return this.end }
  get durableOffset (): number { return this.durable }
  get writtenOffset (): number { return this.writer.written }
  // End of what the log has acknowledged (durable callbacks fired up to here): the fsynced end
  // under 'always' and 'interval', the written end under 'none' (page cache: survives a process
  // crash, not a power loss, as that policy states). Records past it may be lost in a crash and
  // their offsets reused, so nothing derived (session cursors) may be persisted beyond it.
  get ackedOffset (): number { return this.opts.flushPolicy === 'none' ? this.writer.written : this.durable }
  // How far a replicator may read: the written end (page cache) while it is at most
  // replicateAheadBytes past the durable offset, else the durable offset. Both are record
  // boundaries (a plain `durable + W` would cut a record). A power loss can lose records below it
  // that a replica holds; recovery's offset gap (see recovery.ts) keeps their offsets from being
  // reused. With replicateAheadBytes 0 this is durableOffset.
  get replicableOffset (): number {
    const written = this.writer.written
    return written - this.durable <= this.aheadBytes ? written : this.durable
  }

  // ---------------------------------------------------------------- append (hot path)

  append (input: AppendInput, onDurable?: DurableCallback): AppendResult {
    if (this.state !== 'open') throw this.notOpenError()
    const topic = this.topics.getOrCreate(input.topic)
    const clientId = this.clientIdBytes(input.clientId)
    const payload = input.payload
    const frame = HEADER_BYTES + topic.bytes.length + clientId.length + payload.length
    if (frame > this.opts.maxRecordBytes || topic.bytes.length > MAX_TOPIC_BYTES) {
      throw tributaryError('TRIB_ERR_LOG_RECORD_TOO_LARGE',
        `record of ${frame} bytes exceeds maxRecordBytes ${this.opts.maxRecordBytes}`,
        { frameBytes: frame, maxRecordBytes: this.opts.maxRecordBytes, topic: input.topic })
    }
    let ts = input.timestampMs ?? this.now()
    if (ts < this.lastTs) ts = this.lastTs // timestamps never go backwards (time index relies on it)
    if (this.end - this.active.base + frame + SEGMENT_END_BYTES > this.opts.segmentBytes && this.end > this.active.base) {
      this.roll()
    }
    const w = this.writer
    if (w.len + frame > w.buf.length) {
      this.makeRoom()
      if (this.state !== 'open') throw this.notOpenError()
    }
    const offset = this.end
    encodeRecord(w.buf, w.len, ts, input.qos, input.retain, topic.bytes, clientId, payload)
    w.len += frame
    this.end = offset + frame
    this.lastTs = ts
    this.lastRecordOffset = offset
    this.active.time.add(offset, ts, this.end)
    const topicOffset = this.topics.add(topic, offset, frame, ts)
    this.appendedRecords++
    if (onDurable !== undefined) this.callbacks.push(onDurable, this.end)
    if (!this.tickScheduled) {
      this.tickScheduled = true
      setImmediate(this.onTick)
    }
    return { offset, nextOffset: this.end, timestampMs: ts, topicOffset }
  }

  private clientIdBytes (clientId: string): Buffer {
    // One publisher often sends many messages in a row (and the broker passes the same string).
    if (clientId === this.lastClientId) return this.lastClientIdBytes
    let b = this.clientIds.get(clientId)
    if (b === undefined) {
      b = Buffer.from(clientId, 'utf8')
      if (b.length > MAX_CLIENT_ID_BYTES) {
        throw tributaryError('TRIB_ERR_LOG_RECORD_TOO_LARGE', `client id of ${b.length} bytes exceeds ${MAX_CLIENT_ID_BYTES}`, { clientId })
      }
      if (this.clientIds.size >= MAX_CLIENT_ID_CACHE) this.clientIds.clear()
      this.clientIds.set(clientId, b)
    }
    this.lastClientId = clientId
    this.lastClientIdBytes = b
    return b
  }

  private notOpenError (): Error {
    if (this.state === 'failed') {
      return tributaryError('TRIB_ERR_LOG_IO', 'commitlog refuses appends after an I/O failure; reopen it', { dir: this.dir }, this.failure)
    }
    return tributaryError('TRIB_ERR_LOG_CLOSED', 'commitlog is closed', { dir: this.dir })
  }

  // Closes the active segment with an end-of-segment marker and starts the next one.
  // The old segment's tail may still be in flight on the pool; its fd is fsynced and closed only
  // once that is written (see maybeSync).
  private roll (): void {
    const old = this.active
    const w = this.writer
    if (w.len + SEGMENT_END_BYTES > w.buf.length) {
      this.makeRoom()
      if (this.state !== 'open') throw this.notOpenError()
    }
    writeSegmentEnd(w.buf, w.len)
    w.len += SEGMENT_END_BYTES
    this.end += SEGMENT_END_BYTES
    old.end = this.end
    old.sealed = true
    old.time.seal(this.lastRecordOffset, this.lastTs, this.end)
    try { old.time.save(join(this.dir, timeIndexName(old.base))) } catch (err) { this.log.warn({ err }, 'cannot save time index (rebuilt on next open)') }
    this.pendingSealed.push({ fd: this.activeFd, end: this.end })
    this.openActive(this.end)
    try {
      w.switchFile(this.activeFd, this.active.base)
    } catch (err) {
      this.fail(tributaryError('TRIB_ERR_LOG_IO', `write to ${old.path} failed`, { path: old.path }, err))
      throw this.notOpenError()
    }
    this.needDirSync = true
    this.retentionDue = true
  }

  private openActive (base: number): void {
    const path = join(this.dir, segmentName(base))
    // Not O_APPEND: the writer uses positional writes, which Linux ignores under O_APPEND.
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o644)
    const seg = new Segment(base, path, base + fstatSync(fd).size, new SegmentTimeIndex(base))
    this.segments.push(seg)
    this.active = seg
    this.activeFd = fd
    this.reader.setActive(seg, fd)
    this.lastRecordOffset = -1
  }

  // The fill buffer is full: queue it for the pool, or write everything now when all buffers are
  // busy (backpressure). On failure the log is failed (the caller checks the state).
  private makeRoom (): void {
    try { this.writer.makeRoom() } catch (err) { this.fail(tributaryError('TRIB_ERR_LOG_IO', `write to ${this.active.path} failed`, { path: this.active.path }, err)) }
    this.updateActiveEnd()
  }

  // Writes every appended byte to the files now (a read reaching past `written`, close).
  private drainWrites (): void {
    if (this.state === 'failed' || this.writer.pendingBytes === 0) return
    try { this.writer.drainSync() } catch (err) { this.fail(tributaryError('TRIB_ERR_LOG_IO', `write to ${this.active.path} failed`, { path: this.active.path }, err)) }
    this.updateActiveEnd()
  }

  // The active segment's end is what its file holds (reads stop there).
  private updateActiveEnd (): void {
    const written = this.writer.written
    this.active.end = Math.max(this.active.base, written)
  }

  // A write completed on the pool.
  private onWritten (): void {
    if (this.state === 'failed') { this.truncateAfterFailure(); return }
    this.updateActiveEnd()
    if (this.opts.flushPolicy === 'none') this.callbacks.fire(this.writer.written)
    if (this.replicaWaiters.length > 0) this.wakeReplicaWaiters()
    if (this.writtenWaiters.length > 0) this.wakeWrittenWaiters()
    this.maybeSync()
  }

  // On failure the file is cut back to the last written position and the log refuses further
  // appends until reopened: nothing after a hole.
  private fail (err: Error): void {
    if (this.state === 'failed') return
    this.state = 'failed'
    this.failure = err
    this.log.error({ err }, 'commitlog I/O failure: refusing appends until reopened')
    this.writer.stop()
    const written = this.writer.written
    // Forget records that never reached the file, so indexes match the log.
    this.end = written
    this.updateActiveEnd()
    this.active.time.truncate(written)
    try { this.topics.truncateFrom(written) } catch (e) { this.log.warn({ err: e }, 'cannot trim topic index after failure') }
    this.truncatePending = true
    this.truncateAfterFailure()
    if (!this.tickScheduled) { this.tickScheduled = true; setImmediate(this.onTick) }
  }

  // A write still in flight on the pool could land after a truncation; so cut once it is over.
  // If `written` is in a segment before the active one (a failed write to a rolled segment's
  // tail), recovery cuts there at the next open.
  private truncateAfterFailure (): void {
    if (!this.truncatePending || this.writer.busy) return
    this.truncatePending = false
    const keep = Math.max(0, this.writer.written - this.active.base)
    try { ftruncateSync(this.activeFd, keep) } catch { /* best effort: recovery cuts at the first bad frame */ }
  }

  // ---------------------------------------------------------------- flush / group commit

  private tick (): void {
    this.tickScheduled = false
    if (this.state === 'failed') { this.failCallbacks(); return }
    this.writer.flushSoon()
    if (this.dataWaiters.length > 0) this.wakeDataWaiters()
    if (this.replicaWaiters.length > 0) this.wakeReplicaWaiters()
    if (this.writtenWaiters.length > 0) this.wakeWrittenWaiters()
    if (this.retentionDue) { this.retentionDue = false; this.enforceRetentionLogged() }
    this.maybeSync()
  }

  private maybeSync (): void {
    if (this.syncing || this.state === 'failed' || this.state === 'closed') return
    const written = this.writer.written
    if (written === this.durable && this.pendingSealed.length === 0 && !this.needDirSync) {
      if (this.flushWaiters.length > 0) this.flushWaiters.resolveUpTo(this.durable)
      return
    }
    // A rolled segment whose tail is still being written cannot be fsynced (and closed) yet, and
    // a sync now could claim bytes of it as durable: wait for the write (it calls back here).
    for (const s of this.pendingSealed) if (s.end > written || this.writer.usesFd(s.fd)) return
    // Group commit ('always' and 'interval'): no fsync is in flight here, so one starts now for
    // everything written; what is written while it runs waits and goes in the next one, started
    // as soon as this one ends (activeSynced calls back here). A record therefore waits for at
    // most the fsync in flight plus its own, and the batch grows with the load by itself: no
    // timer tick adds latency (a fixed 5 ms tick made every ack wait up to 5 ms + fsync).
    // `flushIntervalMs` is the bound on that wait that the loss window is stated with; it is
    // enforced by the schedule as long as one fsync takes less (see README).
    // With minFsyncGapMs the next round waits until that long after the last one started (a
    // flush() or close does not wait). The timer re-checks: Node's timers count from the loop's
    // cached clock and can fire early by the time the current turn had already run.
    const policy = this.opts.flushPolicy
    const urgent = this.flushWaiters.length > 0 || this.state === 'closing'
    if (policy !== 'none' || urgent) {
      if (this.minSyncGapMs > 0 && !urgent) {
        const wait = this.lastSyncStartedAt + this.minSyncGapMs - performance.now()
        if (wait > 0) {
          if (this.gapTimer === null) this.gapTimer = setTimeout(this.onGapElapsed, Math.ceil(wait))
          return
        }
      }
      this.startSync()
      return
    }
    // 'none': only sealed segments are synced in the background (then their fds are closed).
    if (this.pendingSealed.length > 0 || this.needDirSync) this.startSync()
  }

  private startSync (): void {
    this.syncing = true
    this.lastSyncStartedAt = performance.now()
    if (this.gapTimer !== null) { clearTimeout(this.gapTimer); this.gapTimer = null }
    this.syncTarget = this.writer.written
    this.syncActiveFd = this.activeFd
    this.syncSealed = this.pendingSealed
    this.pendingSealed = []
    this.syncDir = this.needDirSync
    this.needDirSync = false
    this.syncStep = 0
    this.nextSyncStep()
  }

  // Order matters: sealed segments, then the directory (new segment names), then the active
  // segment. So a durable record implies every earlier byte is durable too.
  private nextSyncStep (): void {
    if (this.syncStep < this.syncSealed.length) {
      this.fdatasync((this.syncSealed[this.syncStep] as SealedFd).fd, this.onSealedSynced)
    } else if (this.syncDir) {
      this.syncDir = false
      open(this.dir, 'r', (err, fd) => {
        if (err !== null) { this.syncFailed(err); return }
        fsync(fd, (err2) => { closeSync(fd); if (err2 !== null) this.syncFailed(err2); else this.nextSyncStep() })
      })
    } else {
      this.fdatasync(this.syncActiveFd, this.onActiveSynced)
    }
  }

  private sealedSynced (err: Error | null): void {
    if (err !== null) { this.syncFailed(err); return }
    closeSync((this.syncSealed[this.syncStep] as SealedFd).fd)
    this.syncStep++
    this.nextSyncStep()
  }

  private activeSynced (err: Error | null): void {
    if (err !== null) { this.syncFailed(err); return }
    this.syncing = false
    if (this.syncTarget > this.durable) this.durable = this.syncTarget
    if (this.state === 'failed') { this.failCallbacks(); return }
    if (this.opts.flushPolicy !== 'none') this.callbacks.fire(this.durable)
    this.flushWaiters.resolveUpTo(this.durable)
    if (this.replicaWaiters.length > 0) this.wakeReplicaWaiters()
    this.maybeSync()
  }

  // After a failed fsync the page cache state is unknown (a retry may "succeed" over lost data),
  // so we never retry: fail everything pending and refuse appends until reopened.
  private syncFailed (err: Error): void {
    this.syncing = false
    this.fail(tributaryError('TRIB_ERR_LOG_IO', `fsync of ${this.dir} failed`, { dir: this.dir }, err))
    this.failCallbacks()
  }

  private failCallbacks (): void {
    const err = this.failure ?? tributaryError('TRIB_ERR_LOG_IO', 'commitlog failed')
    // Records below `durable` were acknowledged already or are acknowledged now: they are on disk.
    if (this.opts.flushPolicy !== 'none') this.callbacks.fire(this.durable)
    else this.callbacks.fire(this.writer.written)
    this.callbacks.failPending(err)
    this.flushWaiters.rejectAll(err)
    this.replicaWaiters.rejectAll(err)
  }

  // Writes and fsyncs everything appended so far.
  async flush (): Promise<void> {
    if (this.state === 'failed') throw this.notOpenError()
    if (this.state === 'closed') return
    this.writer.flushSoon()
    const target = this.end
    if (target <= this.durable && this.pendingSealed.length === 0) return
    await this.flushWaiters.wait(target, this.syncNow)
  }

  // ---------------------------------------------------------------- waiting for data

  // Resolves once endOffset > offset (new data to read from `offset`).
  async waitForData (offset: number): Promise<void> {
    if (this.end > offset) return
    if (this.state !== 'open') throw this.notOpenError()
    await this.dataWaiters.wait(offset)
  }

  // Resolves once writtenOffset > offset (checked as writes complete and once per loop turn with
  // appends). For readers on the event-loop thread that should not read past what is written:
  // read() there first writes the buffers out synchronously (drainWrites), and a write(2) that
  // extends the file can wait for the filesystem's journal while another file is fsynced.
  async waitForWritten (offset: number): Promise<void> {
    if (this.writer.written > offset) return
    if (this.state !== 'open') throw this.notOpenError()
    await this.writtenWaiters.wait(offset)
  }

  private wakeWrittenWaiters (): void {
    this.writtenWaiters.resolvePassed(this.writer.written)
  }

  // Resolves once replicableOffset > offset (checked as writes and fsyncs complete, and once per
  // loop turn with appends).
  async waitForReplicable (offset: number): Promise<void> {
    if (this.replicableOffset > offset) return
    if (this.state !== 'open') throw this.notOpenError()
    await this.replicaWaiters.wait(offset, this.nudgeNow)
  }

  private wakeReplicaWaiters (): void {
    this.replicaWaiters.resolvePassed(this.replicableOffset)
    if (this.replicaWaiters.length > 0) this.nudgeReplicaWaiters()
  }

  // When the window, not the writes, holds a waiting replicator back (more appended than the
  // window lets through), an fsync moves it on: under flush policy 'none' nothing else starts one.
  private nudgeReplicaWaiters (): void {
    if (this.replicaFlushPending || this.state !== 'open') return
    if (this.end - this.durable <= this.aheadBytes) return // the writes alone will do
    if (this.replicaWaiters.anyPassedBy(this.end)) {
      this.replicaFlushPending = true
      this.flush().then(this.onReplicaFlushed, this.onReplicaFlushed)
    }
  }

  private wakeDataWaiters (): void {
    this.dataWaiters.resolvePassed(this.end)
  }

  // ---------------------------------------------------------------- reads (log-reader.ts)

  // Records from `offset` in log order, crossing segments. `limits.maxOffset` stops before that
  // offset (a replicator passes durableOffset to ship only what survives a crash).
  read (offset: number, limits?: ReadLimits): ReadBatch { return this.reader.read(offset, limits) }

  // Raw bytes of the log from `offset` for raw-read.ts (log-reader.ts: -1 when retention deleted
  // `offset`, 0 at `maxOffset` / the end / in an offset gap).
  readBytes (offset: number, into: Buffer, at: number, len: number, maxOffset: number): number {
    return this.reader.readBytes(offset, into, at, len, maxOffset)
  }

  // Bytes of offset gaps inside [from, to): a lag measured in offsets subtracts them.
  gapBytesIn (from: number, to: number): number { return this.reader.gapBytesIn(from, to) }

  // Where a reader at `offset` continues: past an offset gap to the next segment's base, else
  // `offset` itself.
  skipGap (offset: number): number { return this.reader.skipGap(offset) }

  // ---------------------------------------------------------------- topic index

  // The topic's next topic offset (= number of records ever appended to it).
  topicEnd (topic: string): number {
    return this.topics.get(topic)?.count ?? 0
  }

  get topicCount (): number { return this.topics.topicCount }

  // Records of one topic from a topic offset; `nextOffset` in the result is a topic offset.
  readTopic (topic: string, topicOffset: number, limits?: ReadLimits): ReadBatch {
    return this.reader.readTopic(topic, topicOffset, limits)
  }

  // First topic offset whose record has timestamp >= ts (O(log n)); topicEnd if none.
  topicOffsetForTime (topic: string, ts: number): number {
    const t = this.topics.get(topic)
    return t === undefined ? 0 : this.topics.lowerBound(t, 'timestampMs', ts)
  }

  // The index entry (log offset, frame size, timestamp) of a topic offset, or null.
  topicEntry (topic: string, topicOffset: number): TopicEntry | null {
    const t = this.topics.get(topic)
    if (t === undefined || topicOffset < 0 || topicOffset >= t.count) return null
    return this.topics.entry(t, topicOffset, { logOffset: 0, frameBytes: 0, timestampMs: 0 })
  }

  // ---------------------------------------------------------------- time index

  // Offset of the first record with timestamp >= ts (endOffset if none; startOffset if all are).
  offsetForTime (ts: number): number { return this.reader.offsetForTime(ts) }

  // ---------------------------------------------------------------- readers and retention

  setReader (name: string, offset: number): void { this.readers.set(name, offset) }
  removeReader (name: string): void { this.readers.delete(name) }

  // Deletes whole oldest segments (never the active one) past retentionBytes or retentionMs.
  // The age rule keeps segments a registered reader has not finished; the bytes cap (disk) wins
  // over readers and then what each reader lost is counted in the report and logged at warn.
  enforceRetention (): RetentionReport {
    const report: RetentionReport = { deletedSegments: 0, deletedBytes: 0, drops: [] }
    if (this.state !== 'open' && this.state !== 'failed') return report
    const { retentionBytes, retentionMs } = this.opts
    if (retentionBytes <= 0 && retentionMs <= 0) return report
    let total = 0
    for (const s of this.segments) total += s.end - s.base
    const cutoff = this.now() - retentionMs
    const drops = new Map<string, RetentionDrop>()
    while (this.segments.length > 1) {
      const seg = this.segments[0] as Segment
      const size = seg.end - seg.base
      const overBytes = retentionBytes > 0 && total > retentionBytes
      const tooOld = retentionMs > 0 && seg.sealed && seg.time.lastTs < cutoff
      if (!overBytes && !tooOld) break
      let minReader = Infinity
      for (const off of this.readers.values()) if (off < minReader) minReader = off
      if (!overBytes && minReader < seg.end) break // a reader still needs it: age alone won't delete
      if (minReader < seg.end) {
        // The drop is counted by scanning the file: its tail may still be on the pool.
        this.drainWrites()
        for (const [name, off] of this.readers) {
          if (off >= seg.end) continue
          const from = Math.max(off, seg.base)
          const scan = scanSegment(seg.path, seg.base, from, seg.end, this.opts.maxRecordBytes, null)
          const d = drops.get(name) ?? { reader: name, records: 0, bytes: 0 }
          d.records += scan.records
          d.bytes += seg.end - from
          drops.set(name, d)
        }
        const scan = scanSegment(seg.path, seg.base, Math.max(minReader, seg.base), seg.end, this.opts.maxRecordBytes, null)
        this.droppedRecords += scan.records
      }
      this.deleteSegment(seg)
      total -= size
      report.deletedSegments++
      report.deletedBytes += size
    }
    report.drops = [...drops.values()]
    for (const d of report.drops) {
      this.log.warn({ reader: d.reader, records: d.records, bytes: d.bytes }, 'retention (disk cap) deleted records a reader had not read')
    }
    if (report.deletedSegments > 0) this.log.info({ segments: report.deletedSegments, bytes: report.deletedBytes }, 'retention deleted segments')
    return report
  }

  private enforceRetentionLogged (): void {
    try { this.enforceRetention() } catch (err) { this.log.error({ err }, 'retention failed') }
  }

  private deleteSegment (seg: Segment): void {
    this.reader.forgetSegment(seg)
    unlinkSync(seg.path)
    try { unlinkSync(join(this.dir, timeIndexName(seg.base))) } catch { /* never written */ }
    this.segments.shift()
  }

  // ---------------------------------------------------------------- stats, checkpoint, close

  stats (): CommitLogStats {
    let bytes = 0
    for (const s of this.segments) bytes += s.end - s.base
    return {
      startOffset: this.startOffset,
      endOffset: this.end,
      durableOffset: this.durable,
      segments: this.segments.length,
      bytesOnDisk: bytes,
      appendedRecords: this.appendedRecords,
      droppedRecords: this.droppedRecords
    }
  }

  // Active time index to its file, then the checkpoint; at close (sync) every topic index tail
  // too. Indexes are not fsynced (derived data); the checkpoint only claims what is durable, and
  // indexedOffset stops at the oldest topic index entry not in its file yet (topic-index.ts:
  // tails are written a few per append, not all at each checkpoint).
  private checkpoint (sync: boolean): void {
    // Written out first so the saved time index covers no more than the file holds.
    this.drainWrites()
    if (sync) this.topics.writeOut()
    const indexed = Math.min(this.writer.written, this.topics.firstPendingOffset)
    this.active.time.coveredEnd = Math.max(this.active.time.coveredEnd, this.active.base)
    this.active.time.save(join(this.dir, timeIndexName(this.active.base)))
    writeCheckpoint(join(this.dir, CHECKPOINT_FILE), {
      durableOffset: this.durable, indexedOffset: Math.min(indexed, this.durable), writtenAtMs: Date.now()
    }, sync)
  }

  private startTimers (): void {
    this.checkpointTimer = setInterval(() => {
      if (this.state !== 'open') return
      try { this.checkpoint(false) } catch (err) { this.log.warn({ err }, 'periodic checkpoint failed') }
    }, CHECKPOINT_INTERVAL_MS)
    this.checkpointTimer.unref()
    if (this.opts.retentionBytes > 0 || this.opts.retentionMs > 0) {
      this.retentionTimer = setInterval(() => { this.enforceRetentionLogged() }, RETENTION_INTERVAL_MS)
      this.retentionTimer.unref()
    }
  }

  // Flushes, writes the checkpoint, removes the dirty marker and releases the lock.
  async close (): Promise<void> {
    if (this.state === 'closed' || this.state === 'closing') return
    const failed = this.state === 'failed'
    if (!failed) {
      this.state = 'closing'
      try {
        await this.flushForClose()
      } catch (err) {
        this.log.error({ err }, 'final flush failed')
      }
    }
    // Fds are closed below: no fsync and no write may still be running on them.
    while (this.syncing || this.writer.busy) await new Promise((resolve) => setImmediate(resolve))
    if (this.gapTimer !== null) { clearTimeout(this.gapTimer); this.gapTimer = null }
    if (this.checkpointTimer !== null) clearInterval(this.checkpointTimer)
    if (this.retentionTimer !== null) clearInterval(this.retentionTimer)
    const cleanClose = this.state !== 'failed' && this.durable === this.end
    try {
      if (cleanClose) {
        this.checkpoint(true)
        unlinkSync(join(this.dir, DIRTY_FILE))
        fsyncDir(this.dir)
      }
    } finally {
      this.state = 'closed'
      const closedErr = tributaryError('TRIB_ERR_LOG_CLOSED', 'commitlog closed')
      this.dataWaiters.rejectAll(closedErr)
      this.writtenWaiters.rejectAll(closedErr)
      this.replicaWaiters.rejectAll(closedErr)
      this.topics.close()
      for (const s of this.pendingSealed) closeSync(s.fd)
      this.pendingSealed = []
      this.reader.closeFds()
      closeSync(this.activeFd)
      releaseLock(this.dir)
    }
  }

  private async flushForClose (): Promise<void> {
    this.writer.flushSoon()
    await this.flushWaiters.wait(this.end, this.syncNow)
  }

  // ---------------------------------------------------------------- after recovery

  // Continues the log where recovery.ts left it: re-opens the tail for appends, or starts a new
  // segment after a sealed one (or the first); then step 6 of recovery (README): DIRTY, the
  // checkpoint, the directory.
  private resumeAfterRecovery (report: RecoveryReport): void {
    const dir = this.dir
    const tail = this.segments[this.segments.length - 1]
    const endNow = report.endOffset
    if (tail !== undefined && !tail.sealed) {
      this.segments.pop()
      const time = tail.time
      this.openActive(tail.base)
      this.active.time = time
      this.active.end = endNow
    } else {
      this.openActive(endNow + report.gapBytes)
      this.needDirSync = true
    }
    // The recovered end, or the new segment's base past an offset gap.
    this.end = this.durable = this.active.end
    this.lastTs = this.active.time.lastTs
    for (const s of this.segments) if (s.time.lastTs > this.lastTs) this.lastTs = s.time.lastTs
    // Mark dirty before anything is appended; the checkpoint records where a rescan starts.
    writeFileSync(join(dir, DIRTY_FILE), String(this.now()))
    this.active.time.save(join(dir, timeIndexName(this.active.base)))
    writeCheckpoint(join(dir, CHECKPOINT_FILE), { durableOffset: endNow, indexedOffset: endNow, writtenAtMs: Date.now() }, true)
    fsyncDir(dir)
    if (report.dirty) this.log.info(report, 'commitlog recovered after a dirty shutdown')
  }
}

function fsyncDir (dir: string): void {
  const fd = openSync(dir, 'r')
  try { fsyncSync(fd) } finally { closeSync(fd) }
}

// The one rule that ties minFsyncGapMs to the flush policy (also checked by the edge's
// --check-config, which opens no log); undefined when the combination is valid.
export function fsyncGapProblem (policy: FlushPolicy, flushIntervalMs: number, minFsyncGapMs: number): string | undefined {
  if (policy === 'interval' && minFsyncGapMs > flushIntervalMs) {
    return `must be <= flushIntervalMs (${flushIntervalMs} ms) with flush policy interval: that is the longest wait before an fsync it promises (got ${minFsyncGapMs})`
  }
  return undefined
}

function validateOptions (opts: CommitLogOptions): void {
  const bad = (field: string, why: string): never => {
    throw tributaryError('TRIB_ERR_CONFIG_INVALID', `commitlog option ${field} ${why}`, { field })
  }
  if (!Number.isSafeInteger(opts.maxRecordBytes) || opts.maxRecordBytes < HEADER_BYTES + 1) bad('maxRecordBytes', `must be an integer >= ${HEADER_BYTES + 1}`)
  if (opts.maxRecordBytes > 0xffff_ffff) bad('maxRecordBytes', 'must fit 32 bits')
  if (!Number.isSafeInteger(opts.segmentBytes) || opts.segmentBytes < opts.maxRecordBytes + SEGMENT_END_BYTES) bad('segmentBytes', 'must hold at least one maximum record plus the end-of-segment marker')
  if (!(opts.flushIntervalMs >= 0)) bad('flushIntervalMs', 'must be >= 0')
  const gap = opts.minFsyncGapMs ?? 0
  if (!(gap >= 0)) bad('minFsyncGapMs', 'must be >= 0')
  const gapProblem = fsyncGapProblem(opts.flushPolicy, opts.flushIntervalMs, gap)
  if (gapProblem !== undefined) bad('minFsyncGapMs', gapProblem)
  if (!['always', 'interval', 'none'].includes(opts.flushPolicy)) bad('flushPolicy', 'must be always, interval or none')
  if (!(opts.retentionBytes >= 0)) bad('retentionBytes', 'must be >= 0')
  if (!(opts.retentionMs >= 0)) bad('retentionMs', 'must be >= 0')
  if (opts.replicateAheadBytes !== undefined && (!Number.isSafeInteger(opts.replicateAheadBytes) || opts.replicateAheadBytes < 0)) bad('replicateAheadBytes', 'must be an integer >= 0')
}
