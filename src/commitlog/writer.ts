// The segment writer: write buffers handed to the libuv pool, so the copy into the page cache
// (write(2), about a third of the append cost when it ran on the event-loop thread) overlaps with
// framing the next records on another core.
//
//   append()   encodes into `buf` at `len` (the fill buffer)
//   handOff()  the fill buffer joins the queue of chunks to write; a spare buffer becomes the fill
//   flushSoon  once per loop turn; a small turn (<= 16 KiB) with the pool idle is written right
//              there, on the event-loop thread (cheaper than a pool round trip: see flushSoon)
//   pool       one positional fs.write in flight at a time, chunks in log order; when it completes
//              `written` advances (a contiguous prefix of the log) and the next chunk is started;
//              if none is queued, whatever the fill buffer holds by then goes next (writes grow
//              with the load instead of one small write per loop turn)
//
// At most MAX_BUFFERS buffers exist (bounded memory, e.g. on a Raspberry Pi). When all are busy
// and the fill buffer is full (the pool thread is slower than the appends: the disk is the limit,
// or the machine has no idle core), `writeAheadSync()` writes the queued chunks and the fill
// buffer synchronously on the event-loop thread, past the chunk still in flight: that is the
// backpressure (appends slow down to the disk's pace instead of queueing without bound), and
// `written` jumps over those bytes once the in-flight write completes.
//
// drainSync() is how a read reaches records that are not written yet (reads use the file, never
// the buffers: one code path for reads), and how close and checkpoints catch up. It also rewrites
// the chunk that is in flight on the pool (same bytes at the same positions: the file ends up
// identical whichever write lands last), so that `written` covers everything when it returns;
// the in-flight buffer is reused only after its write completes.
//
// Writes are positional (pwrite), so the segment fd must not be opened with O_APPEND (Linux
// ignores the position then). A chunk remembers its fd: after a segment roll the old segment's
// tail may still be in flight while the fill buffer already belongs to the new segment (`usesFd`
// tells the commitlog when the old fd may be fsynced and closed).
import { write, writeSync } from 'node:fs'

// Fill buffer size: large enough to amortise the syscall, small enough for a Raspberry Pi.
export const WRITE_BUFFER_BYTES = 1024 * 1024
// Triple buffering: one filling, one in flight, one queued. More buffers would only absorb
// longer stalls of the pool thread; when it is slower on average (disk-bound, or no idle core)
// writeAheadSync is the backpressure whatever the count. Memory: MAX_BUFFERS x buffer size.
const MAX_BUFFERS = 3
// Largest write done on the event-loop thread by flushSoon (see there); larger ones use the pool.
const SYNC_WRITE_MAX_BYTES = 16 * 1024

interface Chunk {
  buf: Buffer
  fd: number
  // Global offset of buf[0], and where that is in the file (start - segment base).
  start: number
  filePos: number
  len: number
}

export interface WriterEvents {
  // `written` advanced (or a write completed): fire callbacks, start fsyncs.
  written: () => void
  // A write failed: nothing past `written` is on disk; no further writes are started.
  failed: (err: Error) => void
}

export class SegmentWriter {
  // The fill buffer and how much of it is used: append() encodes straight into it.
  buf: Buffer
  len = 0
  // Global offset just past the last byte known to be in the file (contiguous prefix).
  written: number
  private fd: number
  private fileBase: number // global offset of the fill buffer's segment file's byte 0
  private start: number // global offset of buf[0]
  private readonly bufferBytes: number
  private buffers = 1
  private readonly spares: Buffer[] = []
  private readonly queue: Chunk[] = []
  private inflight: Chunk | null = null
  private inflightDone = 0 // bytes of the in-flight chunk written so far (short writes)
  // End of the bytes written synchronously right after the in-flight chunk (writeAheadSync).
  private aheadEnd = 0
  private stopped = false
  private readonly events: WriterEvents
  private readonly onWriteDone = (err: NodeJS.ErrnoException | null, n: number): void => { this.writeDone(err, n) }

  constructor (bufferBytes: number, fd: number, fileBase: number, end: number, events: WriterEvents) {
    this.bufferBytes = bufferBytes
    this.buf = Buffer.allocUnsafe(bufferBytes)
    this.fd = fd
    this.fileBase = fileBase
    this.start = end
    this.written = end
    this.events = events
  }

  // Global offset just past the last appended byte.
  get end (): number { return this.start + this.len }

  // A write is running on the pool (its buffer and fd are in use).
  get busy (): boolean { return this.inflight !== null }

  // Bytes appended but not yet confirmed in the file.
  get pendingBytes (): number { return this.end - this.written }

  usesFd (fd: number): boolean {
    if (this.inflight !== null && this.inflight.fd === fd) return true
    for (const c of this.queue) if (c.fd === fd) return true
    return this.len > 0 && this.fd === fd
  }

  // Once per loop turn: if the pool is idle, start writing what this turn appended. If a write is
  // in flight, its completion picks the fill buffer up (bigger writes under load).
  // A turn's small write (light load) goes to the file on this thread instead: handing it to the
  // pool cost more of this thread's time than the write(2) itself (CPU profile of the QoS 1
  // latency cell, broker on one core: fs.write's dispatch, the pool thread's wake-up on the same
  // core and the completion were about a quarter of the broker's busy time), and light load is
  // where that per-message cost shows as latency. Under load the fill buffer grows past the limit
  // while a write is in flight, and writes go to the pool as before.
  flushSoon (): void {
    if (this.inflight === null && !this.stopped) {
      if (this.len > 0 && this.len <= SYNC_WRITE_MAX_BYTES && this.queue.length === 0) { this.writeTurnSync(); return }
      this.handOff()
      this.startNext()
    }
  }

  // The fill buffer to the file now (nothing is queued or in flight, so `written` == `start`).
  private writeTurnSync (): void {
    try {
      writeAllSync(this.fd, this.buf, this.len, this.start - this.fileBase)
    } catch (err) {
      this.stop()
      this.events.failed(err as Error)
      return
    }
    this.start += this.len
    this.len = 0
    this.written = this.start
    this.events.written()
  }

  // The fill buffer cannot take the next record: queue it and continue in a spare buffer, or,
  // when all buffers are busy, write everything synchronously (backpressure). Throws on an I/O
  // error (the caller fails the log).
  makeRoom (): void {
    if (this.len === 0) return
    if (this.spares.length === 0 && this.buffers >= MAX_BUFFERS) {
      this.writeAheadSync()
      return
    }
    this.handOff()
    this.startNext()
  }

  // The next bytes go to another segment file (after a roll): what the fill buffer holds still
  // belongs to the old fd and is queued (or written) for it.
  switchFile (fd: number, fileBase: number): void {
    this.makeRoom()
    this.fd = fd
    this.fileBase = fileBase
  }

  // Backpressure (all buffers busy): writes the queued chunks and the fill buffer now, on this
  // thread, but not the chunk in flight: that one is the pool's, and `written` moves past all of
  // it when it completes. Throws on an I/O error.
  private writeAheadSync (): void {
    if (this.inflight === null) { this.drainSync(); return }
    while (this.queue.length > 0) {
      const c = this.queue.shift() as Chunk
      writeAllSync(c.fd, c.buf, c.len, c.filePos)
      this.spares.push(c.buf)
    }
    writeAllSync(this.fd, this.buf, this.len, this.start - this.fileBase)
    this.start += this.len
    this.len = 0
    this.aheadEnd = this.start
  }

  // Writes every appended byte to the files now, on this thread. Throws on an I/O error.
  drainSync (): void {
    if (this.stopped) return
    const f = this.inflight
    // Re-write the in-flight chunk: identical bytes at identical positions (see the top).
    if (f !== null) writeAllSync(f.fd, f.buf, f.len, f.filePos)
    while (this.queue.length > 0) {
      const c = this.queue.shift() as Chunk
      writeAllSync(c.fd, c.buf, c.len, c.filePos)
      this.spares.push(c.buf)
    }
    if (this.len > 0) writeAllSync(this.fd, this.buf, this.len, this.start - this.fileBase)
    this.start += this.len
    this.len = 0
    this.written = this.start
  }

  // After a failure: forget what is not written, start nothing new. A write already in flight
  // cannot be recalled; `busy` says when it is over.
  stop (): void {
    this.stopped = true
    this.queue.length = 0
    this.start = this.written
    this.len = 0
  }

  private handOff (): void {
    if (this.len === 0) return
    this.queue.push({ buf: this.buf, fd: this.fd, start: this.start, filePos: this.start - this.fileBase, len: this.len })
    this.start += this.len
    this.len = 0
    const spare = this.spares.pop()
    if (spare !== undefined) this.buf = spare
    else { this.buf = Buffer.allocUnsafe(this.bufferBytes); this.buffers++ }
  }

  private startNext (): void {
    if (this.inflight !== null || this.stopped) return
    const c = this.queue.shift()
    if (c === undefined) return
    this.inflight = c
    this.inflightDone = 0
    write(c.fd, c.buf, 0, c.len, c.filePos, this.onWriteDone)
  }

  private writeDone (err: NodeJS.ErrnoException | null, n: number): void {
    const c = this.inflight as Chunk
    if (err === null && !this.stopped && this.inflightDone + n < c.len) {
      // Short write (rare for files; e.g. the disk filled up mid-way): write the rest, and
      // the next attempt reports the error.
      this.inflightDone += n
      const at = this.inflightDone
      write(c.fd, c.buf, at, c.len - at, c.filePos + at, this.onWriteDone)
      return
    }
    this.inflight = null
    this.spares.push(c.buf)
    if (this.stopped) { this.events.written(); return }
    if (err !== null) {
      this.stop()
      this.events.failed(err)
      return
    }
    // drainSync may have covered this chunk and more already; writeAheadSync wrote what follows.
    if (c.start + c.len > this.written) this.written = c.start + c.len
    if (this.aheadEnd > this.written) this.written = this.aheadEnd
    if (this.queue.length === 0) this.handOff()
    this.startNext()
    this.events.written()
  }
}

function writeAllSync (fd: number, buf: Buffer, len: number, filePos: number): void {
  let done = 0
  while (done < len) done += writeSync(fd, buf, done, len - done, filePos + done)
}
