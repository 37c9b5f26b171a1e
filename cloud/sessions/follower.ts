// Delivers one connected persistent session from the cloud store: from its cursor, every record
// that matches its subscriptions, in store order, then the live ones as they arrive. Backlog and
// live are one read position, so there is no seam: nothing is skipped and nothing is sent twice
// by this follower. The aedes mqemitter path does not deliver store records to such clients (see
// persistence.ts, authorizeForward).
//
// Cursor: the lowest store position sent at QoS>0 and not yet acknowledged (PUBACK / PUBCOMP),
// else the position after the last record looked at. It is never ahead of the client's acks.
// Limits: at most `window` QoS>0 messages unacknowledged and at most `window` writes queued on the
// socket (so a slow client holds back its own follower, not the node's memory).
import type { Logger } from '../../src/log/index.js'
import { topicMatches } from '../../src/protocol/topic-filter.js'
import type { CloudTopicTemplate } from '../dispatcher.js'
import type { CloudStore, StoredRecord } from '../store/types.js'
import type { SessionSub } from './record.js'
import type { StoreTail } from './tail.js'

// One read batch is held in memory per connected session: its size bounds a session's memory
// (the JetStream and memory stores also honour the byte limit; the embedded store counts
// records only).
const READ_BATCH_RECORDS = 256
const READ_BATCH_BYTES = 256 * 1024
const RETRY_MS = 1000

// Marks packets sent by followers, so authorizeForward lets them through and the persistence
// recognises them; their counter keeps aedes' per-client dedupe() (brokerId, brokerCounter) happy.
export const FOLLOWER_BROKER_ID = 'tributary-session-follower'
let counter = 0

export interface DeliveryClient {
  // aedes Client.deliverQoS: QoS 0 is written as is, QoS>0 gets a packet id (outgoingUpdate).
  deliverQoS: (packet: object, cb: () => void) => void
}

export class SessionFollower {
  private buffer: StoredRecord[] = []
  private bi = 0
  private nextRead: number
  // Position after the last record taken out of the buffer.
  private doneUpTo: number
  // QoS>0 deliveries awaiting their ack, in send order (= store order); a queue with a head.
  private readonly sent: number[] = []
  private head = 0
  private readonly acked = new Set<number>()
  private readonly byCounter = new Map<number, number>()
  private readonly byMessageId = new Map<number, number>()
  private inflight = 0
  private writes = 0
  private reading = false
  private stopped = false
  private wake: (() => void) | undefined

  constructor (
    private readonly store: CloudStore,
    private readonly tail: StoreTail,
    private readonly template: CloudTopicTemplate,
    private readonly client: DeliveryClient,
    private subs: SessionSub[],
    cursor: number,
    private readonly window: number,
    private readonly onProgress: () => void,
    private readonly logger: Logger
  ) {
    this.nextRead = cursor
    this.doneUpTo = cursor
  }

  get cursor (): number {
    return this.head < this.sent.length ? this.sent[this.head] : this.doneUpTo
  }

  start (): void { this.pump() }

  setSubs (subs: SessionSub[]): void { this.subs = subs }

  // aedes assigned a packet id to one of our deliveries (outgoingUpdate).
  assign (brokerCounter: number, messageId: number): void {
    const seq = this.byCounter.get(brokerCounter)
    if (seq === undefined) return
    this.byCounter.delete(brokerCounter)
    this.byMessageId.set(messageId, seq)
  }

  // PUBACK (QoS 1) or PUBCOMP (QoS 2) for a packet id. false: not one of ours.
  ack (messageId: number): boolean {
    const seq = this.byMessageId.get(messageId)
    if (seq === undefined) return false
    this.byMessageId.delete(messageId)
    this.acked.add(seq)
    while (this.head < this.sent.length && this.acked.delete(this.sent[this.head])) this.head++
    if (this.head > 1024 && this.head * 2 > this.sent.length) { this.sent.splice(0, this.head); this.head = 0 }
    this.inflight--
    this.onProgress()
    this.pump()
    return true
  }

  stop (): void {
    this.stopped = true
    this.wake?.()
  }

  // Granted QoS of a record for this session, -1 when no subscription wants it.
  private qosFor (r: StoredRecord, topic: string): number {
    let best = -1
    for (let i = 0; i < this.subs.length; i++) {
      const s = this.subs[i]
      if (s.qos > best && r.seq >= s.since && topicMatches(s.topic, topic)) best = s.qos
    }
    return best < 0 ? -1 : Math.min(best, r.qos)
  }

  private readonly written = (): void => {
    this.writes--
    if (this.writes < this.window) this.pump()
  }

  private pump (): void {
    if (this.stopped || this.reading) return
    let moved = false
    while (this.inflight < this.window && this.writes < this.window) {
      if (this.bi >= this.buffer.length) { this.refill(); break }
      const r = this.buffer[this.bi++]
      this.doneUpTo = r.nextSeq
      moved = true
      const topic = this.template.render(r.edgeId, r.topic)
      const qos = this.qosFor(r, topic)
      if (qos < 0) continue
      const brokerCounter = ++counter
      if (qos > 0) {
        this.sent.push(r.seq)
        this.byCounter.set(brokerCounter, r.seq)
        this.inflight++
      }
      this.writes++
      // [MQTT-3.3.1-9] a forwarded message is not flagged retained (it is not a reply to SUBSCRIBE).
      this.client.deliverQoS({ cmd: 'publish', topic, payload: r.payload, qos, retain: false, dup: false, brokerId: FOLLOWER_BROKER_ID, brokerCounter }, this.written)
    }
    if (moved) this.onProgress()
  }

  private refill (): void {
    this.reading = true
    this.buffer = []
    this.bi = 0
    void this.readMore().then(() => {
      this.reading = false
      this.pump()
    })
  }

  private async readMore (): Promise<void> {
    while (!this.stopped) {
      try {
        const b = await this.store.read(this.nextRead, { maxRecords: READ_BATCH_RECORDS, maxBytes: READ_BATCH_BYTES })
        if (b.status === 'truncated') this.logger.warn({ from: this.nextRead, to: b.nextSeq }, 'session cursor was behind the store\'s retention: records skipped')
        if (b.records.length > 0) {
          this.buffer = b.records
          this.nextRead = b.nextSeq
          return
        }
        this.nextRead = b.nextSeq
        if (this.head >= this.sent.length && this.doneUpTo < b.nextSeq) { this.doneUpTo = b.nextSeq; this.onProgress() }
        // stop() during the read above woke nothing: do not start a wait nobody ends.
        if (this.stopped) return
        await Promise.race([this.tail.wait(this.nextRead), new Promise<void>((resolve) => { this.wake = resolve })])
      } catch (err) {
        if (this.stopped) return
        this.logger.warn({ err, from: this.nextRead }, 'session follower cannot read the store; retrying')
        await new Promise<void>((resolve) => { const t = setTimeout(resolve, RETRY_MS); this.wake = () => { clearTimeout(t); resolve() } })
      }
    }
  }
}
