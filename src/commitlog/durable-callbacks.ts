// The queue of durable callbacks: one per append that asked for it, fired exactly once, in append
// order, when the log's acknowledged end (fsynced, or written under flush policy 'none') passes
// the record's end; or failed with the log's error.
//
// Separate from commit-log.ts because it is a data structure of the append hot path with its own
// invariant (slots [head, len) pending, in append order) and its own allocation rule: parallel
// arrays + a head index, no object per append. The arrays keep their capacity: slots are reused
// once all have fired (emptying an array with `length = 0` frees its backing store, and refilling
// it regrows it in steps: garbage on every group commit). CommitLog decides when to fire (which
// end, which policy); this file only keeps the order.
import type { DurableCallback } from './types.js'

// A backlog that never drains completely (appends keep arriving while fsyncs run) would grow the
// arrays without bound: past this many fired slots at the front, the pending ones move to the
// front (one copy now and then instead of one per group commit).
const COMPACT_AFTER_FIRED = 65_536

function noCallback (): void {}

export class DurableCallbacks {
  private fns: DurableCallback[] = []
  private ends: number[] = []
  private head = 0
  private len = 0

  // Hot path (every append with a callback): two array stores, no allocation while the arrays
  // have room.
  push (fn: DurableCallback, end: number): void {
    const n = this.len++
    this.fns[n] = fn
    this.ends[n] = end
  }

  // Fires, in order, every pending callback whose record ends at or below `upTo`.
  fire (upTo: number): void {
    const fns = this.fns
    const ends = this.ends
    let i = this.head
    // this.len is re-read: a callback may append.
    while (i < this.len && (ends[i] as number) <= upTo) {
      const fn = fns[i] as DurableCallback
      fns[i] = noCallback // do not keep the caller's closure alive in a spare slot
      i++
      this.head = i
      fn(null)
    }
    if (this.head === this.len) { this.head = 0; this.len = 0 } else if (this.head > COMPACT_AFTER_FIRED) {
      // A long backlog that never drains completely: move it to the front now and then.
      this.fns = fns.slice(this.head, this.len)
      this.ends = ends.slice(this.head, this.len)
      this.len -= this.head
      this.head = 0
    }
  }

  // Fails every pending callback with `err` (the caller first fires those that are on disk).
  // The queue is emptied before the first call, so a callback that re-enters the log finds no
  // half-failed queue.
  failPending (err: Error): void {
    const fns = this.fns
    const len = this.len
    const head = this.head
    this.fns = []
    this.ends = []
    this.head = 0
    this.len = 0
    for (let i = head; i < len; i++) (fns[i] as DurableCallback)(err)
  }
}
