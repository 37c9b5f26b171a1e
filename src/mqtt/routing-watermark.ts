// The lowest log offset that aedes may still route to subscribers.
//
// Why: a record is appended before aedes routes it (and so tells the persistence that an offline
// session should get it): a QoS 1 message right after the append (broker.ts, route before
// durable), a QoS 2 message after its durable append, and records of different publishers can
// reach routing out of log order. A session cursor written to disk in
// that gap could already point past a record the session has not been told about; a crash then
// would skip that record for the session although its publisher got a PUBACK. So session cursors
// are never persisted (and idle sessions never follow the log end) beyond this watermark.
//
// The broker reports every appended QoS>0 record (`appended`) and aedes' 'publish' event reports
// it routed (`routed`). A record whose publish aedes abandons (its client vanished before the
// PUBACK could be written) is never routed: after ABANDON_AFTER_MS it stops holding the watermark
// back (that record was never acked, so nothing was promised for it).
import { logPositionOf, type LogPosition } from './record-offsets.js'

// Routing takes microseconds to a few ms; 10 s is far beyond it even under heavy load, and short
// enough that an abandoned record does not hold back cursors (and retention) for long.
export const ABANDON_AFTER_MS = 10_000

export class RoutingWatermark {
  // Appended, not yet known routed, in append (= offset) order; `head` indexes the oldest.
  private offsets: number[] = []
  private appendedAt: number[] = []
  private head = 0
  private readonly routedEarly = new Set<number>()

  constructor (private readonly now: () => number = Date.now) {}

  appended (position: LogPosition): void {
    this.offsets.push(position.offset)
    this.appendedAt.push(this.now())
  }

  routed (position: LogPosition): void {
    if (this.head < this.offsets.length && this.offsets[this.head] === position.offset) {
      this.head++
      this.advance()
    } else {
      this.routedEarly.add(position.offset)
    }
  }

  // The lowest offset not yet routed (Infinity when none is pending).
  get lowest (): number {
    this.advance()
    return this.head < this.offsets.length ? this.offsets[this.head] : Infinity
  }

  get pending (): number { return this.offsets.length - this.head }

  // Hooks for the broker: `onAppended` beside recordAppended (BrokerDeps.onAppended), and
  // `onPublished` on aedes' 'publish' event (emitted after the offline enqueue and the routing).
  // QoS 0 is never queued for offline sessions, so only QoS > 0 records are tracked.
  readonly onAppended = (packet: { qos: number }, position: LogPosition): void => {
    if (packet.qos > 0) this.appended(position)
  }

  readonly onPublished = (packet: { qos: number, payload: unknown }): void => {
    if (packet.qos === 0) return
    const position = logPositionOf(packet.payload)
    if (position !== undefined) this.routed(position)
  }

  private advance (): void {
    const cutoff = this.now() - ABANDON_AFTER_MS
    while (this.head < this.offsets.length) {
      const offset = this.offsets[this.head]
      if (this.routedEarly.delete(offset)) { this.head++; continue }
      if (this.appendedAt[this.head] < cutoff) { this.head++; continue }
      break
    }
    // Compact now and then so the arrays do not grow without bound.
    if (this.head > 1024 && this.head * 2 > this.offsets.length) {
      this.offsets = this.offsets.slice(this.head)
      this.appendedAt = this.appendedAt.slice(this.head)
      this.head = 0
    }
    if (this.head === this.offsets.length && this.routedEarly.size > 0) this.routedEarly.clear()
  }
}
