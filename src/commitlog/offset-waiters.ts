// Promises waiting for one of the log's ends to reach an offset: flush() (durableOffset),
// waitForData (endOffset), waitForWritten (writtenOffset), waitForReplicable (replicableOffset).
//
// Separate from commit-log.ts because the four lists share one mechanism (queue, resolve those an
// end has reached, reject all on failure or close) while CommitLog decides which end, when to
// check it and with which error to give up. Two rules, kept apart on purpose:
// - resolveUpTo(durable): flush waiters, whose offset is an end to be covered: `offset <= durable`;
// - resolvePassed(end): the others, whose offset is a position to read from: `end > offset`.
// Not a hot path: a waiter is one object and one promise per wait, and the lists are checked
// only while they are non-empty.

interface Waiter { offset: number, resolve: () => void, reject: (err: Error) => void }

export class OffsetWaiters {
  private list: Waiter[] = []

  get length (): number { return this.list.length }

  // A promise resolved by resolveUpTo / resolvePassed (whichever the owner uses for this list)
  // or rejected by rejectAll. `queued`, if given, runs right after the waiter is in the list,
  // inside the promise's executor (a check that may resolve it at once).
  wait (offset: number, queued?: () => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.list.push({ offset, resolve, reject })
      if (queued !== undefined) queued()
    })
  }

  // Resolves the waiters whose offset lies at or below `upTo` (an end that has been covered).
  resolveUpTo (upTo: number): void {
    if (this.list.length === 0) return
    const keep: Waiter[] = []
    for (const w of this.list) {
      if (w.offset <= upTo) w.resolve()
      else keep.push(w)
    }
    this.list = keep
  }

  // Resolves the waiters whose offset lies below `end` (the position waited for has been passed).
  resolvePassed (end: number): void {
    const keep: Waiter[] = []
    for (const w of this.list) {
      if (end > w.offset) w.resolve()
      else keep.push(w)
    }
    this.list = keep
  }

  // Whether `end` has passed some waiter's offset (one that resolvePassed(end) would resolve).
  anyPassedBy (end: number): boolean {
    for (const w of this.list) if (end > w.offset) return true
    return false
  }

  rejectAll (err: Error): void {
    const list = this.list
    this.list = []
    for (const w of list) w.reject(err)
  }
}
