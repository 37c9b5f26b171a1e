// Delivers one connected persistent session from the cloud store: from its cursor, every record
// that matches its subscriptions, in store order, then the live ones as they arrive. Backlog and
// live are one read position, so there is no seam: nothing is skipped and nothing is sent twice
// by this follower. The aedes mqemitter path does not deliver store records to such clients (see
// persistence.ts, authorizeForward).
//
// Cursor: the lowest store position sent at QoS>0 and not yet acknowledged (PUBACK / PUBCOMP),
// else the position after the last record looked at. It is never ahead of the client's acks.
// Packet ids [MQTT-4.4.0-1]: the follower numbers its QoS>0 deliveries itself, in store order,
// from the id of the message at the cursor (ResumeState.packetId). A follower that resumes the
// session (same node or another, after a disconnect or a crash) reads again from the cursor and
// so gives each message the id it had: unacked ones go out again with that id and DUP=1, QoS 2
// ones in PUBREC-received state are not published again (their PUBREL is re-sent by the
// persistence's outgoingStream before this follower starts), ones acked out of order are skipped.
// Limits: at most `window` QoS>0 messages from the oldest unacknowledged one on (so packet ids in
// flight never repeat, and the record's acked list stays short) and at most `window` writes
// queued on the socket (so a slow client holds back its own follower, not the node's memory).
import type { Logger } from '../../src/log/index.js'
import { topicMatches } from '../../src/protocol/topic-filter.js'
import type { CloudTopicTemplate } from '../dispatcher.js'
import type { CloudStore, StoredRecord } from '../store/types.js'
import { FOLLOWER_MAX_PACKET_ID, nextPacketId, type SessionSub } from './record.js'
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

// State of one QoS>0 delivery in flight.
const SENT = 0 // PUBLISH sent, PUBACK / PUBREC owed
const RELEASED = 1 // QoS 2: PUBREC came, PUBREL sent once the record holds this (manager.ts), PUBCOMP owed
const DONE = 2 // acknowledged (out of order: an older one is still owed)

export interface DeliveryClient {
  // aedes Client.deliverQoS: QoS 0 is written as is; QoS>0 keeps the packet's messageId.
  deliverQoS: (packet: object, cb: () => void) => void
}

// What a session must remember so that another follower continues exactly here (record.ts).
export interface ResumeState {
  cursor: number
  packetId: number
  sentUpTo: number
  released: number[]
  acked: number[]
}

export class SessionFollower {
  private buffer: StoredRecord[] = []
  private bi = 0
  private nextRead: number
  // Position after the last record taken out of the buffer, and the packet id the next QoS>0
  // delivery gets: always a pair (the ids depend only on the records since the cursor).
  private doneUpTo: number
  private nextId: number
  // QoS>0 deliveries from the oldest unacknowledged on, in send order (= store order): queues
  // with a head; the state of each by packet id.
  private readonly seqs: number[] = []
  private readonly ids: number[] = []
  private head = 0
  private readonly states = new Map<number, number>()
  // QoS 2 ids in RELEASED state, in PUBREC order.
  private readonly released = new Set<number>()
  // Position after the last QoS>0 message sent.
  private sentEnd: number
  // From the record, for the messages this follower has not reached again yet.
  private readonly resumeSentUpTo: number
  private readonly resumeReleased: Set<number>
  private readonly resumeAcked: Set<number>
  private readonly window: number
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
    resume: ResumeState,
    window: number,
    private readonly onProgress: () => void,
    private readonly logger: Logger
  ) {
    this.nextRead = resume.cursor
    this.doneUpTo = resume.cursor
    this.nextId = resume.packetId
    this.sentEnd = resume.cursor
    this.resumeSentUpTo = resume.sentUpTo
    this.resumeReleased = new Set(resume.released)
    this.resumeAcked = new Set(resume.acked)
    // Ids in flight must be distinct: at most as many as the id range holds.
    this.window = Math.min(window, FOLLOWER_MAX_PACKET_ID)
  }

  get cursor (): number {
    return this.head < this.seqs.length ? this.seqs[this.head] : this.doneUpTo
  }

  // For the session record: enough to resume here (see ResumeState, record.ts).
  resumeState (): ResumeState {
    const inflight = this.head < this.seqs.length
    const cursor = inflight ? this.seqs[this.head] : this.doneUpTo
    const acked: number[] = [...this.resumeAcked]
    for (let i = this.head; i < this.ids.length; i++) if (this.states.get(this.ids[i]) === DONE) acked.push(this.ids[i])
    return {
      cursor,
      packetId: inflight ? this.ids[this.head] : this.nextId,
      sentUpTo: Math.max(cursor, this.sentEnd, this.resumeSentUpTo),
      released: [...this.resumeReleased, ...this.released],
      acked
    }
  }

  // Position from which records are matched against subscriptions changed now (record.ts `until`).
  get readUpTo (): number { return this.doneUpTo }

  start (): void { this.pump() }

  setSubs (subs: SessionSub[]): void { this.subs = subs }

  // PUBREC of a QoS 2 message (aedes is about to send the PUBREL). false: not one of ours.
  pubrec (messageId: number): boolean {
    if (this.states.get(messageId) !== SENT) return false
    this.states.set(messageId, RELEASED)
    this.released.add(messageId)
    this.onProgress()
    return true
  }

  // PUBACK (QoS 1) or PUBCOMP (QoS 2) for a packet id. false: not one of ours.
  ack (messageId: number): boolean {
    const state = this.states.get(messageId)
    if (state === undefined || state === DONE) {
      // A PUBCOMP for a PUBREL re-sent at the reconnect, before this follower reached its message.
      if (!this.resumeReleased.delete(messageId)) return false
      this.resumeAcked.add(messageId)
      this.onProgress()
      return true
    }
    this.states.set(messageId, DONE)
    this.released.delete(messageId)
    this.advance()
    this.onProgress()
    this.pump()
    return true
  }

  stop (): void {
    this.stopped = true
    this.wake?.()
  }

  private advance (): void {
    while (this.head < this.ids.length && this.states.get(this.ids[this.head]) === DONE) {
      this.states.delete(this.ids[this.head])
      this.head++
    }
    if (this.head > 1024 && this.head * 2 > this.ids.length) {
      this.ids.splice(0, this.head)
      this.seqs.splice(0, this.head)
      this.head = 0
    }
  }

  // Granted QoS of a record for this session, -1 when no subscription wants it.
  private qosFor (r: StoredRecord, topic: string): number {
    let best = -1
    for (let i = 0; i < this.subs.length; i++) {
      const s = this.subs[i]
      if (s.qos > best && r.seq >= s.since && (s.until === undefined || r.seq < s.until) && topicMatches(s.topic, topic)) best = s.qos
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
    while (this.ids.length - this.head < this.window && this.writes < this.window) {
      if (this.bi >= this.buffer.length) { this.refill(); break }
      const r = this.buffer[this.bi++]
      this.doneUpTo = r.nextSeq
      moved = true
      const topic = this.template.render(r.edgeId, r.topic)
      const qos = this.qosFor(r, topic)
      if (qos < 0) continue
      let messageId: number | undefined
      if (qos > 0) {
        messageId = this.nextId
        this.nextId = nextPacketId(messageId)
        this.seqs.push(r.seq)
        this.ids.push(messageId)
        if (r.seq < this.resumeSentUpTo && this.resumeAcked.delete(messageId)) {
          this.states.set(messageId, DONE)
          this.advance()
          continue
        }
        if (r.seq < this.resumeSentUpTo && this.resumeReleased.delete(messageId)) {
          // Its PUBREL went out again at the reconnect: only the PUBCOMP is owed.
          this.states.set(messageId, RELEASED)
          this.released.add(messageId)
          continue
        }
        this.states.set(messageId, SENT)
        this.sentEnd = r.nextSeq
      }
      this.writes++
      // [MQTT-3.3.1-9] a forwarded message is not flagged retained (it is not a reply to SUBSCRIBE).
      // [MQTT-3.3.1-1] DUP=1 on a QoS>0 message this session may have sent before.
      this.client.deliverQoS({ cmd: 'publish', topic, payload: r.payload, qos, retain: false, dup: qos > 0 && r.seq < this.resumeSentUpTo, messageId, brokerId: FOLLOWER_BROKER_ID, brokerCounter: ++counter }, this.written)
    }
    if (this.doneUpTo >= this.resumeSentUpTo && (this.resumeReleased.size > 0 || this.resumeAcked.size > 0)) this.dropResumeLeftovers()
    if (moved) this.onProgress()
  }

  // Ids from the record that no message got when read again: the subscriptions changed in a way
  // the record does not describe (not expected, see record.ts `until`). Their PUBCOMPs are ignored.
  private dropResumeLeftovers (): void {
    this.logger.warn({ released: [...this.resumeReleased], acked: [...this.resumeAcked] }, 'session resumed: packet ids of the record matched no message; dropped')
    this.resumeReleased.clear()
    this.resumeAcked.clear()
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
        if (this.head >= this.ids.length && this.doneUpTo < b.nextSeq) { this.doneUpTo = b.nextSeq; this.onProgress() }
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
