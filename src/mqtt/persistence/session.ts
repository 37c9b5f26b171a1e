// One persistent session's delivery state: a cursor into the commitlog instead of a queue.
//
// Invariant: every log record the session must still receive has offset >= `cursor`. A record at
// or above the cursor is pending unless it is tracked as acked; on a replay (reconnect) the
// session reads the log from the cursor and re-derives what to send from its subscriptions.
//
// What is tracked per message is only what a cursor cannot say:
//   - `entries`: log records handed to this session while it was connected (or replayed), until
//     the cursor passes them: packet identifier, QoS 2 PUBREL state, acked flag, which connection
//     got it. Bounded by what is in flight to a connected client.
//   - `untrackedMin`: the lowest record enqueued while the client was offline (not tracked one by
//     one: that is the point); the cursor stays at or below it until a replay covers it.
//   - `replayFloor`: how far a running replay has read; the cursor stays at or below it.
// cursor = min(first unacked entry, untrackedMin, replayFloor, high), recomputed on every change.
// It can move backwards: when a record appended earlier reaches aedes after later ones were
// acked (two publishers racing between append and routing), the cursor goes back to it, so it is
// replayed rather than lost; the price is a few duplicates, which QoS 1 allows.
import type { LogRecord, QoS } from '../../commitlog/types.js'
import type { LogPosition } from '../record-offsets.js'
import { topicMatches } from './topic-match.js'

export const NO_ID = -1

export class Entry {
  offset: number
  nextOffset: number
  qos: number
  messageId = NO_ID
  // The packet aedes last gave outgoingUpdate (PUBLISH or PUBREL), returned by outgoingClearMessageId.
  packet: object | null = null
  pubrel = false
  acked = false
  // An o2: key (keys.ts, outgoing-qos2.ts) was queued for this entry: a QoS 2 delivery whose
  // packet identifier and PUBREL state must survive a crash [MQTT-4.4.0-1].
  stored = false
  // The aedes Client object (a connection) that was sent this record; a replay for the same
  // connection skips it, one for a new connection resends it [MQTT-4.4.0-1].
  deliveredTo: object | null = null

  constructor (offset: number, nextOffset: number, qos: number) {
    this.offset = offset
    this.nextOffset = nextOffset
    this.qos = qos
  }
}

export interface SubRecord {
  qos: number
  rh: number | undefined
  rap: boolean | undefined
  nl: boolean | undefined
  subscriptionIdentifier?: number
  // Log offset at subscription time: older records are not for this subscription on replay.
  since: number
}

// A queued copy of a packet that is not in the log (string payloads, broker-internal publishes,
// the abstract test suite). Kept in memory and in the MetaStore (out: keys).
export interface CopyEntry {
  seq: number
  packet: QueuedPacket
}

// The fields aedes-packet gives a queued PUBLISH, with a fixed shape.
export class QueuedPacket {
  cmd: string
  brokerId: string | undefined
  brokerCounter: number
  topic: string
  payload: unknown
  qos: number
  retain: boolean
  dup: boolean
  // Unassigned when queued, like aedes-packet: outgoingUpdate assigns it.
  messageId: number | undefined = undefined

  constructor (original: Record<string, unknown>) {
    this.cmd = typeof original.cmd === 'string' ? original.cmd : 'publish'
    this.brokerId = original.brokerId as string | undefined
    this.brokerCounter = (original.brokerCounter as number | undefined) ?? 0
    this.topic = original.topic as string
    this.payload = original.payload ?? Buffer.alloc(0)
    this.qos = (original.qos as number | undefined) ?? 0
    this.retain = (original.retain as boolean | undefined) ?? false
    this.dup = (original.dup as boolean | undefined) ?? false
  }
}

export class Session {
  readonly clientId: string
  readonly subs = new Map<string, SubRecord>()
  cursor: number
  persistedCursor: number
  high: number
  untrackedMin = Infinity
  replayFloor = Infinity
  replayToken: object | null = null
  readonly entries = new Map<number, Entry>()
  readonly byMessageId = new Map<number, Entry>()
  // Tracked entries sorted by offset, from `head` on (an index, not shift(): O(1) pops).
  private order: Entry[] = []
  private head = 0
  copies: CopyEntry[] = []
  // Offsets of completed QoS 2 deliveries whose o2: key is kept (as completed) until the persisted
  // cursor has passed them: until then a restart replays from below them and must skip them.
  // Grows like `entries` behind an unacknowledged head (a slow subscriber).
  doneKeys: number[] = []
  // Matching cache: consecutive log records often share a topic.
  private lastTopic = ''
  private lastOffsetSince = -1
  private lastQos = 0

  constructor (clientId: string, cursor: number) {
    this.clientId = clientId
    this.cursor = cursor
    this.persistedCursor = cursor
    this.high = cursor
  }

  get hasSubscriptions (): boolean { return this.subs.size > 0 }

  subsChanged (): void { this.lastTopic = ''; this.lastOffsetSince = -1 }

  // Highest QoS of this session's QoS>0 subscriptions that match a record; 0 = not for us.
  matchQos (record: LogRecord): number {
    if (record.qos === 0) return 0
    let best: number
    if (record.topic === this.lastTopic && record.offset >= this.lastOffsetSince) {
      best = this.lastQos
    } else {
      best = 0
      let newestSince = -1
      for (const [filter, sub] of this.subs) {
        if (sub.since > newestSince) newestSince = sub.since
        if (sub.qos === 0 || sub.since > record.offset) continue
        if (sub.qos > best && topicMatches(filter, record.topic)) best = sub.qos
      }
      // Reusable for later records of this topic only if no subscription was left out for being
      // newer than this record.
      this.lastTopic = record.topic
      this.lastOffsetSince = record.offset >= newestSince ? newestSince : Infinity
      this.lastQos = best
    }
    return best < record.qos ? best : record.qos
  }

  // A log-backed message for this session (outgoingEnqueue). Connected: tracked one by one;
  // offline: only lowers untrackedMin. Returns true when the cursor changed.
  enqueue (position: LogPosition, qos: number, live: boolean): boolean {
    if (position.nextOffset > this.high) this.high = position.nextOffset
    if (live) {
      const entry = this.entries.get(position.offset)
      if (entry === undefined) this.track(position, qos)
      else if (qos > entry.qos) entry.qos = qos
    } else if (position.offset < this.untrackedMin) {
      this.untrackedMin = position.offset
    }
    return this.recompute()
  }

  track (position: LogPosition, qos: number): Entry {
    const entry = new Entry(position.offset, position.nextOffset, qos)
    this.entries.set(entry.offset, entry)
    if (position.nextOffset > this.high) this.high = position.nextOffset
    const order = this.order
    if (this.head === order.length || order[order.length - 1].offset < entry.offset) {
      order.push(entry)
    } else {
      let lo = this.head
      let hi = order.length
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (order[mid].offset < entry.offset) lo = mid + 1
        else hi = mid
      }
      order.splice(lo, 0, entry)
    }
    return entry
  }

  assign (entry: Entry, messageId: number, packet: object | null, connection: object | null): void {
    if (entry.messageId !== NO_ID && entry.messageId !== messageId && this.byMessageId.get(entry.messageId) === entry) {
      this.byMessageId.delete(entry.messageId)
    }
    entry.messageId = messageId
    entry.packet = packet
    entry.deliveredTo = connection
    this.byMessageId.set(messageId, entry)
  }

  // An outgoing QoS 2 delivery read at start-up (an o2: key at or above the cursor). In flight:
  // tracked as sent on no connection, so the next replay resends it with the same packet
  // identifier and DUP 1, or as PUBREL [MQTT-4.4.0-1]; the cursor stays at or below it.
  // Completed: tracked as acked, so the replay (which starts below it) skips it.
  restore (position: LogPosition, messageId: number, pubrel: boolean, completed: boolean): void {
    const entry = this.entries.get(position.offset) ?? this.track(position, 2)
    entry.qos = 2
    entry.stored = true
    if (completed) {
      entry.acked = true
      this.doneKeys.push(entry.offset)
      return
    }
    this.assign(entry, messageId, null, null)
    entry.pubrel = pubrel
  }

  // Retention deleted the records below `offset` (a replay found them truncated): entries there can
  // never be resent or completed; counted as done so they stop holding the cursor (their o2: keys
  // go with the cursor write that passes them).
  forgetBelow (offset: number): void {
    const order = this.order
    for (let i = this.head; i < order.length && order[i].offset < offset; i++) {
      const entry = order[i]
      if (entry.acked) continue
      entry.acked = true
      if (entry.messageId !== NO_ID && this.byMessageId.get(entry.messageId) === entry) this.byMessageId.delete(entry.messageId)
      if (entry.stored) this.doneKeys.push(entry.offset)
    }
  }

  // Removes the completed keys the persisted cursor has passed; returns their offsets.
  takePassedDoneKeys (persistedCursor: number): number[] | null {
    let passed: number[] | null = null
    let kept: number[] | null = null
    for (const offset of this.doneKeys) {
      if (offset < persistedCursor) (passed ??= []).push(offset)
      else (kept ??= []).push(offset)
    }
    if (passed !== null) this.doneKeys = kept ?? []
    return passed
  }

  // PUBACK / PUBCOMP (or aedes deciding not to deliver). Returns true when the cursor changed.
  ack (entry: Entry): boolean {
    if (entry.acked) return false
    entry.acked = true
    if (entry.messageId !== NO_ID && this.byMessageId.get(entry.messageId) === entry) this.byMessageId.delete(entry.messageId)
    return this.recompute()
  }

  // Forgets acked entries at the head, but only below what a replay may still read (untrackedMin,
  // replayFloor): a replay that reads an acked record must find it tracked as acked, or it would
  // send it again (a QoS 2 duplicate; e.g. a completed delivery restored at start-up).
  private dropAckedHead (): void {
    const floor = this.untrackedMin < this.replayFloor ? this.untrackedMin : this.replayFloor
    const order = this.order
    while (this.head < order.length && order[this.head].acked && order[this.head].offset < floor) {
      this.entries.delete(order[this.head].offset)
      this.head++
    }
    // Compact now and then so the array does not grow without bound.
    if (this.head > 1024 && this.head * 2 > order.length) {
      this.order = order.slice(this.head)
      this.head = 0
    }
  }

  recompute (): boolean {
    this.dropAckedHead()
    let c = this.high
    if (this.head < this.order.length && this.order[this.head].offset < c) c = this.order[this.head].offset
    if (this.untrackedMin < c) c = this.untrackedMin
    if (this.replayFloor < c) c = this.replayFloor
    if (c === this.cursor) return false
    this.cursor = c
    return true
  }

  // Nothing pending at all: the cursor may follow the end of the log (so an idle session does
  // not hold back retention).
  get idle (): boolean {
    return this.head === this.order.length && this.untrackedMin === Infinity && this.replayFloor === Infinity && this.copies.length === 0
  }

  clearTracking (): void {
    this.entries.clear()
    this.byMessageId.clear()
    this.order = []
    this.head = 0
    this.doneKeys = []
  }

  get trackedCount (): number { return this.order.length - this.head }
}

export function minQos (a: number, b: number): QoS {
  return (a < b ? a : b) as QoS
}
