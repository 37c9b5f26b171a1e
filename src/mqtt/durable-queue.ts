// The callbacks of appends waiting to become durable, in append order. The commitlog fires its
// durable callbacks in append order, so one shared callback can pop the oldest entry here instead
// of the broker allocating a closure per message. A ring of preallocated arrays that doubles when
// full (its size follows the number of unacked appends, bounded by the clients' in-flight windows).

export type AckCallback = (err?: Error | null) => void

export class DurableQueue {
  private callbacks: Array<AckCallback | null>
  private startedAt: Float64Array
  private head = 0
  private count = 0
  private mask: number

  constructor (initialCapacity = 1024) {
    let capacity = 16
    while (capacity < initialCapacity) capacity *= 2
    this.callbacks = new Array<AckCallback | null>(capacity).fill(null)
    this.startedAt = new Float64Array(capacity)
    this.mask = capacity - 1
  }

  get length (): number { return this.count }

  // `callback` null: an append nobody waits for (QoS 0), kept so the order still lines up.
  push (callback: AckCallback | null, startedAt: number): void {
    if (this.count > this.mask) this.grow()
    const i = (this.head + this.count) & this.mask
    this.callbacks[i] = callback
    this.startedAt[i] = startedAt
    this.count++
  }

  // Undoes the last push (the append it stood for threw before it was queued in the log).
  popLast (): void {
    if (this.count === 0) return
    this.count--
    this.callbacks[(this.head + this.count) & this.mask] = null
  }

  // Removes the oldest entry; returns its callback. `startedAtOfShifted` holds its start time.
  startedAtOfShifted = 0
  shift (): AckCallback | null {
    if (this.count === 0) throw new Error('DurableQueue.shift on empty queue: the log fired more durable callbacks than appends')
    const i = this.head
    const callback = this.callbacks[i]
    this.startedAtOfShifted = this.startedAt[i]
    this.callbacks[i] = null
    this.head = (i + 1) & this.mask
    this.count--
    return callback
  }

  private grow (): void {
    const capacity = this.callbacks.length * 2
    const callbacks = new Array<AckCallback | null>(capacity).fill(null)
    const startedAt = new Float64Array(capacity)
    for (let k = 0; k < this.count; k++) {
      const i = (this.head + k) & this.mask
      callbacks[k] = this.callbacks[i]
      startedAt[k] = this.startedAt[i]
    }
    this.callbacks = callbacks
    this.startedAt = startedAt
    this.head = 0
    this.mask = capacity - 1
  }
}
