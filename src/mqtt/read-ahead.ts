// Read ahead past QoS 1 publishes that wait for durability. aedes parses a connection's next
// socket chunk only once every packet of the current chunk is done (lib/client.js: enqueue counts
// `_parsingBatch` up, the per-packet done, `_nextBatch`, counts it down and reads at 0; a
// 'readable' event counts down one), and a QoS 1 PUBLISH is done only after its PUBACK, i.e.
// after the fsync. With route-before-durable (early-routing.ts) a message is delivered at append,
// but what its publisher sent meanwhile in chunks of several packets sat unread in the socket
// until the fsync ended: the fsync's time, and its disk tail (stalls of 50 to 300 ms on this
// machine's disk), landed in the delivery latency of the publisher's next messages (bridge bench:
// edge-subscriber p99 2.9 ms with --flush-policy none, up to 278 ms with interval).
//
// Once a QoS 1 publish is appended (routed, its PUBACK owed), this counts it down for aedes' batch
// counter ahead of time and records a credit; the packet's own done later consumes the credit
// instead of counting down again. So every packet is counted down once, and the counter never
// drops below what aedes itself would hold minus the credits (no read is lost, none doubled).
// PUBACKs still go out after durable, in append order; messages are routed in parse order.
//
// The early count-down runs once per loop turn (one setImmediate for all clients), never inside
// the parse that delivered the packet: mqtt-packet's parser is not re-entrant.
import type { Client } from 'aedes'

// Credits per connection: QoS 1 publishes read ahead whose PUBACK is not out yet. Beyond this,
// aedes' own flow applies again (the next chunk waits for the acks) and TCP pushes back on the
// publisher, so a client that never waits for PUBACKs cannot make the broker hold more than this
// many of its packets (plus one socket chunk; 4,096 small packets are ~1-2 MB). It covers a
// 5,000 msgs/s connection through an fsync stall of ~0.8 s.
export const READ_AHEAD_LIMIT = 4_096

type NextBatch = (err?: Error | null) => void

interface ClientInternals {
  _parsingBatch: number
  _nextBatch: NextBatch
  _paused?: boolean
  closed?: boolean
  _tribCredits?: number // early count-downs not yet matched by the packet's own done
  _tribDue?: number // appended QoS 1 publishes to count down at the next turn
  _tribCountDown?: NextBatch // aedes' own _nextBatch
}

export class ReadAhead {
  private due: ClientInternals[] = []
  private spare: ClientInternals[] = []
  private scheduled = false
  private readonly onTurn = (): void => { this.run() }

  // A QoS 1 publish of `client` was appended and routed; its done comes after durable.
  appended (client: Client | null): void {
    if (client === null) return
    const c = client as unknown as ClientInternals
    if (c._tribCredits === undefined) install(c)
    const due = c._tribDue as number
    if ((c._tribCredits as number) + due >= READ_AHEAD_LIMIT) return
    if (due === 0) this.due.push(c)
    c._tribDue = due + 1
    if (!this.scheduled) { this.scheduled = true; setImmediate(this.onTurn) }
  }

  private run (): void {
    this.scheduled = false
    const due = this.due
    this.due = this.spare
    for (let i = 0; i < due.length; i++) {
      const c = due[i] as ClientInternals
      // Only what is still counted may be counted down early (aedes clamps at 0): never more,
      // so the credits match real count-downs.
      const k = Math.min(c._tribDue as number, c._parsingBatch)
      c._tribDue = 0
      if (k <= 0 || c.closed === true || c._paused === true) continue
      c._tribCredits = (c._tribCredits as number) + k
      // The last count-down goes through aedes, which reads the next chunk at 0.
      c._parsingBatch -= k - 1
      const countDown = c._tribCountDown as NextBatch
      countDown(null)
    }
    due.length = 0
    this.spare = due
  }
}

// Once per connection (its first QoS 1 publish): packet dones go through a wrapper that consumes
// credits. aedes hands `client._nextBatch` to each packet's handler when it enqueues the packet.
function install (c: ClientInternals): void {
  const original = c._nextBatch
  c._tribCredits = 0
  c._tribDue = 0
  c._tribCountDown = original
  c._nextBatch = function nextBatchWithCredits (err?: Error | null): void {
    if ((err === undefined || err === null) && (c._tribCredits as number) > 0) { c._tribCredits = (c._tribCredits as number) - 1; return }
    original(err)
  }
}
