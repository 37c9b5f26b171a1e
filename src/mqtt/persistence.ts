// The aedes-persistence 11 adapter over the commitlog and the MetaStore. Design and limits:
// src/mqtt/README.md ("Persistence"). In short:
//   - Subscriptions, wills, retained messages and inbound QoS 2 state live in the MetaStore, with
//     an in-memory copy (a qlobber trie for subscriptionsByTopic) that every method updates
//     synchronously.
//   - Offline queues are cursors into the commitlog (session.ts): a log-backed message costs a
//     persistent subscriber no write at all; packets that are not in the log fall back to a
//     stored copy.
//   - Order: methods on aedes' delivery path (storeRetained, subscriptionsByTopic,
//     outgoingEnqueue*, outgoingUpdate, outgoingClearMessageId) never wait for I/O, so their
//     promises resolve in call order and aedes' dedupe() drops nothing (DESIGN.md §4). Their
//     MetaStore writes go through one ordered write queue (write-queue.ts). Methods whose result a
//     client sees as an ack (SUBACK, CONNACK, PUBREC, PUBCOMP) wait for their commit.
//   - Exception on the delivery path: an outgoing QoS 2 PUBLISH or PUBREL of a log-backed message
//     waits for its o2: key to commit (outgoing-qos2.ts), so a crash cannot make the broker resend
//     it under a new packet identifier. QoS 2 promises still resolve in call order among
//     themselves (one ordered queue); QoS 1 ones do not wait for them.
import { Readable } from 'node:stream'
import QlobberSub from 'qlobber/aedes/qlobber-sub.js'
import type { Logger } from '../log/index.js'
import type { MetaOp, MetaStore } from '../meta/types.js'
import { logPositionOf } from './record-offsets.js'
import { decodePacket, encodePacket, type PlainPacket } from './persistence/codec.js'
import { cursorKey, decodeOffset, encodeOffset, incomingKey, outgoingKey, PREFIX, retainedKey, splitKey, subKey, willKey } from './persistence/keys.js'
import { readerName, type SessionLog } from './persistence/log-port.js'
import { replaySession, type ReplayContext } from './persistence/replay.js'
import { QueuedPacket, Session, type CopyEntry, type SubRecord } from './persistence/session.js'
import { topicMatches } from './persistence/topic-match.js'
import { OrderedMetaWriter } from './persistence/write-queue.js'
import { completeOutgoingQos2, pushAllOutgoingQos2, pushPassedDoneKeys, putOutgoingQos2, restoreOutgoingQos2 } from './persistence/outgoing-qos2.js'

export type { SessionLog } from './persistence/log-port.js'

export interface PersistenceOptions {
  log: SessionLog
  meta: MetaStore
  logger: Logger
  // How often changed session cursors are written to the MetaStore. A crash replays the QoS 1
  // messages acked in the last interval (QoS 1 is at-least-once: allowed); lower = more writes.
  cursorFlushMs?: number
  // Lowest offset aedes may still route (see routing-watermark.ts): cursors are never persisted
  // beyond it. Omit where nothing is appended by clients (e.g. the cloud's session store).
  watermark?: { readonly lowest: number }
}

const DEFAULT_CURSOR_FLUSH_MS = 100

const QLOBBER_OPTIONS = { separator: '/', wildcard_one: '+', wildcard_some: '#', match_empty_levels: true }

interface ClientLike { id: string }
interface SubLike { topic: string, qos: number, rh?: number, rap?: boolean, nl?: boolean, subscriptionIdentifier?: number }
interface EnqueueSub { clientId: string, qos?: number }
type PacketLike = Record<string, unknown> & { messageId?: number, payload?: unknown, cmd?: string, brokerId?: string, brokerCounter?: number, topic?: string, qos?: number }
interface BrokerLike { id: string, clients?: Record<string, unknown> }

export function createPersistence (opts: PersistenceOptions): LogPersistence {
  return new LogPersistence(opts)
}

export class LogPersistence {
  private readonly log: SessionLog
  private readonly meta: MetaStore
  private readonly logger: Logger
  private readonly writer: OrderedMetaWriter
  private readonly cursorFlushMs: number
  private readonly watermark: { readonly lowest: number } | undefined
  private _broker: BrokerLike | null = null

  private readonly trie = new QlobberSub(QLOBBER_OPTIONS)
  private readonly sessions = new Map<string, Session>()
  private clientsCount = 0
  private readonly retained = new Map<string, PlainPacket>()
  private readonly wills = new Map<string, PlainPacket>()
  private readonly incoming = new Map<string, Map<number, PlainPacket>>()
  private copySeq = 1

  private readonly dirty = new Set<Session>()
  private flushTimer: NodeJS.Timeout | null = null
  private urgentScheduled = false
  private lastEndSeen = -1
  private destroyed = false
  private readonly replayCtx: ReplayContext

  constructor (opts: PersistenceOptions) {
    this.log = opts.log
    this.meta = opts.meta
    this.logger = opts.logger
    this.writer = new OrderedMetaWriter(opts.meta, opts.logger)
    this.cursorFlushMs = opts.cursorFlushMs ?? DEFAULT_CURSOR_FLUSH_MS
    this.watermark = opts.watermark
    this.replayCtx = {
      log: this.log,
      logger: this.logger,
      brokerId: () => this._broker?.id ?? '',
      onCursorMoved: (s) => { this.cursorMoved(s) }
    }
  }

  get broker (): BrokerLike | null { return this._broker }

  // ------------------------------------------------------------------ lifecycle

  async setup (broker: BrokerLike): Promise<void> {
    this._broker = broker
    await this.load()
    this.flushTimer = setInterval(() => { this.flushCursors() }, this.cursorFlushMs)
    this.flushTimer.unref()
  }

  // Flushes cursors and every queued write. Does not close the log or the MetaStore: their owner
  // (the composition root) closes them after this.
  async destroy (): Promise<void> {
    if (this.destroyed) return
    this.destroyed = true
    if (this.flushTimer !== null) clearInterval(this.flushTimer)
    this.flushTimer = null
    // Cursors are persisted only up to the acked offset: make the log's tail durable first, or a
    // clean restart would replay (duplicate) what sessions acked in the last moments.
    if (this.log.flush !== undefined) {
      try { await this.log.flush() } catch (err) { this.logger.warn({ err }, 'commitlog flush before the last cursor write failed: cursors stay at the acked offset') }
    }
    this.flushCursors()
    await this.writer.flush()
  }

  private async load (): Promise<void> {
    const end = this.log.endOffset
    for await (const [key, value] of this.meta.scan(PREFIX.sub)) {
      const [clientId, topic] = splitKey(key, PREFIX.sub)
      const v = JSON.parse(value.toString('utf8')) as { qos: number, rh?: number, rap?: boolean, nl?: boolean, sid?: number, since?: number }
      const record: SubRecord = { qos: v.qos, rh: v.rh, rap: v.rap, nl: v.nl, since: v.since ?? 0 }
      if (v.sid !== undefined) record.subscriptionIdentifier = v.sid
      const session = this.sessionOf(clientId, 0)
      if (!session.hasSubscriptions) this.clientsCount++
      session.subs.set(topic, record)
      if (record.qos > 0) this.trie.add(topic, { clientId, topic, qos: record.qos, rh: record.rh, rap: record.rap, nl: record.nl })
    }
    for await (const [key, value] of this.meta.scan(PREFIX.cursor)) {
      const session = this.sessionOf(key.slice(PREFIX.cursor.length), 0)
      session.cursor = session.persistedCursor = session.high = decodeOffset(value)
      this.persistedKeys.add(session)
    }
    for await (const [key, value] of this.meta.scan(PREFIX.outgoing)) {
      const [clientId, seqHex] = splitKey(key, PREFIX.outgoing)
      const seq = parseInt(seqHex, 16)
      const fields = decodePacket(value)
      const packet = new QueuedPacket(fields)
      packet.messageId = fields.messageId as number | undefined
      this.sessionOf(clientId, 0).copies.push({ seq, packet })
      if (seq >= this.copySeq) this.copySeq = seq + 1
    }
    for await (const [key, value] of this.meta.scan(PREFIX.will)) this.wills.set(key.slice(PREFIX.will.length), decodePacket(value))
    for await (const [key, value] of this.meta.scan(PREFIX.retained)) this.retained.set(key.slice(PREFIX.retained.length), decodePacket(value))
    for await (const [key, value] of this.meta.scan(PREFIX.incoming)) {
      const [clientId, id] = splitKey(key, PREFIX.incoming)
      const packet = decodePacket(value)
      packet.messageId = Number(id)
      this.incomingOf(clientId).set(Number(id), packet)
    }
    await this.clampBeyondEnd(end)
    // After the cursors (and their clamp): deliveries below a cursor are done.
    const qos2 = await restoreOutgoingQos2(this.meta, this.sessions, end, this.logger)
    if (qos2.stale.length > 0) await this.writer.writeAndWait(qos2.stale)
    for (const session of this.sessions.values()) {
      // What was appended after the cursor is not known record by record after a restart: all of
      // it is pending until a replay has looked at it.
      if (session.cursor < end) {
        session.untrackedMin = session.cursor
        session.high = end
      }
      this.log.setReader(readerName(session.clientId), session.cursor)
    }
    this.lastEndSeen = end
    this.logger.debug({ sessions: this.sessions.size, retained: this.retained.size, wills: this.wills.size, outgoingQos2: qos2.restored, outgoingQos2Dropped: qos2.stale.length }, 'persistence loaded')
  }

  // A cursor or a subscription start past the end of the recovered log: the crash cut a tail that
  // was not acknowledged yet (cursors are persisted only up to the log's acked offset, so this
  // means an older version, a lost disk write, or a log restored from elsewhere). New records will
  // reuse those offsets; a cursor left there would silently skip them. Clamp to the end, rewrite,
  // and say so. The session may get again a message it saw just before the crash (a QoS 1 dup).
  private async clampBeyondEnd (end: number): Promise<void> {
    const ops: MetaOp[] = []
    for (const session of this.sessions.values()) {
      if (session.cursor > end) {
        this.logger.warn({ clientId: session.clientId, cursor: session.cursor, logEnd: end }, 'session cursor is past the end of the recovered log: clamped to the end')
        session.cursor = session.persistedCursor = session.high = end
        ops.push({ type: 'put', key: cursorKey(session.clientId), value: encodeOffset(end) })
      }
      for (const [topic, record] of session.subs) {
        if (record.since <= end) continue
        this.logger.warn({ clientId: session.clientId, topic, since: record.since, logEnd: end }, 'subscription start is past the end of the recovered log: clamped to the end')
        record.since = end
        ops.push({ type: 'put', key: subKey(session.clientId, topic), value: encodeSub(record) })
      }
    }
    if (ops.length > 0) await this.writer.writeAndWait(ops)
  }

  // ------------------------------------------------------------------ retained

  async storeRetained (pkt: PacketLike): Promise<void> {
    const packet = Object.assign({}, pkt)
    const topic = packet.topic as string
    const payload = packet.payload as { length: number } | undefined
    // [MQTT-3.3.1-10] a retained message with an empty payload removes the retained message.
    if (payload === undefined || payload.length === 0) {
      if (this.retained.delete(topic)) this.writer.write([{ type: 'del', key: retainedKey(topic) }])
    } else {
      this.retained.set(topic, packet)
      this.writer.write([{ type: 'put', key: retainedKey(topic), value: encodePacket(packet) }])
    }
  }

  createRetainedStream (pattern: string): Readable {
    return this.createRetainedStreamCombi([pattern])
  }

  createRetainedStreamCombi (patterns: string[]): Readable {
    const out: PlainPacket[] = []
    for (const [topic, packet] of this.retained) {
      for (const pattern of patterns) {
        if (topicMatches(pattern, topic)) { out.push(packet); break }
      }
    }
    return Readable.from(out)
  }

  // ------------------------------------------------------------------ subscriptions

  async addSubscriptions (client: ClientLike, subs: SubLike[]): Promise<void> {
    const session = this.sessionOf(client.id, this.log.endOffset)
    if (!session.hasSubscriptions && subs.length > 0) this.clientsCount++
    const ops: MetaOp[] = []
    const now = this.log.endOffset
    for (const sub of subs) {
      const stored = session.subs.get(sub.topic)
      // A replaced QoS>0 subscription keeps its start, so nothing queued under it is lost
      // [MQTT-3.8.4-3].
      const since = stored !== undefined && stored.qos > 0 && sub.qos > 0 ? stored.since : now
      const record: SubRecord = { qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl, since }
      if (sub.subscriptionIdentifier !== undefined) record.subscriptionIdentifier = sub.subscriptionIdentifier
      if (sub.qos > 0) {
        this.trie.add(sub.topic, { clientId: client.id, topic: sub.topic, qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl })
      } else if (stored !== undefined && stored.qos > 0) {
        this.trie.remove(sub.topic, { clientId: client.id, topic: sub.topic })
      }
      session.subs.set(sub.topic, record)
      ops.push({ type: 'put', key: subKey(client.id, sub.topic), value: encodeSub(record) })
    }
    session.subsChanged()
    if (session.persistedCursor !== session.cursor || !this.hasPersistedCursor(session)) {
      ops.push(this.cursorOp(session))
      pushPassedDoneKeys(session, ops)
    }
    await this.writer.writeAndWait(ops)
    this.log.setReader(readerName(client.id), session.persistedCursor)
  }

  async removeSubscriptions (client: ClientLike, topics: string[]): Promise<void> {
    const session = this.sessions.get(client.id)
    if (session === undefined) return
    const ops: MetaOp[] = []
    for (const topic of topics) {
      const stored = session.subs.get(topic)
      if (stored === undefined) continue
      if (stored.qos > 0) this.trie.remove(topic, { clientId: client.id, topic })
      session.subs.delete(topic)
      ops.push({ type: 'del', key: subKey(client.id, topic) })
    }
    if (ops.length > 0 && !session.hasSubscriptions) this.clientsCount--
    session.subsChanged()
    await this.writer.writeAndWait(ops)
  }

  async subscriptionsByClient (client: ClientLike): Promise<Array<SubLike>> {
    const session = this.sessions.get(client.id)
    const out: SubLike[] = []
    if (session === undefined) return out
    for (const [topic, r] of session.subs) {
      const sub: SubLike = { topic, qos: r.qos, rh: r.rh, rap: r.rap, nl: r.nl }
      if (r.subscriptionIdentifier !== undefined) sub.subscriptionIdentifier = r.subscriptionIdentifier
      out.push(sub)
    }
    return out
  }

  async countOffline (): Promise<{ subsCount: number, clientsCount: number }> {
    return { subsCount: this.trie.subscriptionsCount, clientsCount: this.clientsCount }
  }

  async subscriptionsByTopic (topic: string): Promise<Array<{ clientId: string, topic: string, qos: number }>> {
    return this.trie.match(topic)
  }

  // A clean session starts (or an explicit clean-up): drop everything of the old session,
  // including its queue [MQTT-3.1.2-6].
  async cleanSubscriptions (client: ClientLike): Promise<void> {
    const session = this.sessions.get(client.id)
    if (session === undefined) return
    const ops: MetaOp[] = []
    for (const [topic, stored] of session.subs) {
      if (stored.qos > 0) this.trie.remove(topic, { clientId: client.id, topic })
      ops.push({ type: 'del', key: subKey(client.id, topic) })
    }
    if (session.hasSubscriptions) this.clientsCount--
    for (const copy of session.copies) ops.push({ type: 'del', key: outgoingKey(client.id, copy.seq) })
    pushAllOutgoingQos2(session, ops)
    ops.push({ type: 'del', key: cursorKey(client.id) })
    session.replayToken = null
    this.sessions.delete(client.id)
    this.dirty.delete(session)
    this.log.removeReader(readerName(client.id))
    await this.writer.writeAndWait(ops)
  }

  getClientList (topic: string): Readable {
    const out: string[] = []
    for (const [clientId, session] of this.sessions) if (session.subs.has(topic)) out.push(clientId)
    return Readable.from(out)
  }

  // ------------------------------------------------------------------ outgoing (the queues)

  async outgoingEnqueue (sub: EnqueueSub, packet: PacketLike): Promise<void> {
    this.enqueueOne(sub, packet)
  }

  async outgoingEnqueueCombi (subs: EnqueueSub[], packet: PacketLike): Promise<void> {
    for (let i = 0; i < subs.length; i++) this.enqueueOne(subs[i], packet)
  }

  private enqueueOne (sub: EnqueueSub, packet: PacketLike): void {
    const position = logPositionOf(packet.payload)
    if (position === undefined) {
      this.enqueueCopy(sub.clientId, packet)
      return
    }
    // One write per message, not per subscriber: the record is already in the log; a session
    // only notes it (in memory).
    const session = this.sessionOf(sub.clientId, position.offset)
    const packetQos = packet.qos ?? 0
    const qos = sub.qos === undefined || sub.qos > packetQos ? packetQos : sub.qos
    if (session.enqueue(position, qos, this.isConnected(sub.clientId))) this.cursorMoved(session)
  }

  private enqueueCopy (clientId: string, packet: PacketLike): void {
    const session = this.sessionOf(clientId, this.log.endOffset)
    const copy: CopyEntry = { seq: this.copySeq++, packet: new QueuedPacket(packet) }
    session.copies.push(copy)
    this.writer.write([{ type: 'put', key: outgoingKey(clientId, copy.seq), value: encodePacket(copy.packet) }])
  }

  async outgoingUpdate (client: ClientLike, packet: PacketLike): Promise<void> {
    const session = this.sessionOf(client.id, this.log.endOffset)
    const messageId = packet.messageId as number
    if (packet.cmd === 'pubrel') {
      const entry = session.byMessageId.get(messageId)
      if (entry !== undefined) {
        entry.pubrel = true
        entry.packet = packet
        // Durable before aedes writes the PUBREL: after a crash the PUBREL is resent, never the
        // PUBLISH (which the subscriber would take as a new message) [MQTT-4.4.0-1].
        if (!entry.acked) await this.writer.writeAndWait([putOutgoingQos2(client.id, entry)])
        return
      }
    } else {
      const position = logPositionOf(packet.payload)
      if (position !== undefined) {
        let entry = session.entries.get(position.offset)
        if (entry === undefined) {
          // Delivered live before its enqueue was tracked (connect race) or below the cursor.
          const packetQos = packet.qos ?? 1
          entry = session.track(position, packetQos)
          if (session.recompute()) this.cursorMoved(session)
        }
        if (!entry.acked) {
          session.assign(entry, messageId, packet, client)
          // QoS 2: the packet identifier is durable before aedes writes the PUBLISH, so a restart
          // resends it with the same identifier and DUP 1 [MQTT-4.4.0-1]. QoS 1 writes nothing
          // (a resent QoS 1 duplicate is allowed) and resolves without I/O.
          if (packet.qos === 2) await this.writer.writeAndWait([putOutgoingQos2(client.id, entry)])
        }
        return
      }
    }
    if (!this.updateCopy(session, client, packet) && packet.cmd !== 'pubrel') throw new Error('no such packet')
    // An unknown PUBREL (its PUBLISH was sent before a restart) is still written: harmless, and
    // failing here would make aedes drop the connection.
  }

  // The queued copy a packet updates: same broker and counter, else same packet identifier
  // (aedes-persistence's memory rules; packet identifiers wrap at 65535).
  private updateCopy (session: Session, client: ClientLike, packet: PacketLike): boolean {
    const copies = session.copies
    for (let i = 0; i < copies.length; i++) {
      const c = copies[i]
      if (c.packet.brokerId === packet.brokerId) {
        if (c.packet.brokerCounter === packet.brokerCounter) {
          c.packet.messageId = packet.messageId
          this.writer.write([{ type: 'put', key: outgoingKey(client.id, c.seq), value: encodePacket(c.packet) }])
          return true
        }
      } else if (c.packet.messageId === packet.messageId) {
        c.packet = packet instanceof QueuedPacket ? packet : packet as unknown as QueuedPacket
        this.writer.write([{ type: 'put', key: outgoingKey(client.id, c.seq), value: encodePacket(packet) }])
        return true
      }
    }
    return false
  }

  async outgoingClearMessageId (client: ClientLike, packet: PacketLike): Promise<object | undefined> {
    const session = this.sessions.get(client.id)
    if (session === undefined) return undefined
    const messageId = packet?.messageId
    if (messageId !== undefined) {
      const entry = session.byMessageId.get(messageId)
      if (entry !== undefined) {
        const acked = entry.packet ?? undefined
        // Write-behind: if lost, a restart resends the PUBREL (harmless). The key goes with the
        // cursor write that passes the record (outgoing-qos2.ts).
        if (entry.stored) this.writer.write([completeOutgoingQos2(session, entry)])
        if (session.ack(entry)) this.cursorMoved(session)
        return acked
      }
    } else {
      // aedes decided not to deliver a queued message (dedupe or authorizeForward): done with it.
      const position = logPositionOf(packet?.payload)
      if (position !== undefined) {
        const entry = session.entries.get(position.offset)
        if (entry === undefined) return undefined
        if (entry.stored && !entry.acked) this.writer.write([completeOutgoingQos2(session, entry)])
        if (session.ack(entry)) this.cursorMoved(session)
        return entry.packet ?? undefined
      }
    }
    const copies = session.copies
    for (let i = 0; i < copies.length; i++) {
      if (copies[i].packet.messageId === messageId) {
        const [copy] = copies.splice(i, 1)
        this.writer.write([{ type: 'del', key: outgoingKey(client.id, copy.seq) }])
        return copy.packet
      }
    }
    return undefined
  }

  outgoingStream (client: ClientLike): Readable {
    const session = this.sessions.get(client.id)
    if (session === undefined) return Readable.from([])
    const token = {}
    session.replayToken = token
    session.untrackedMin = Infinity
    session.replayFloor = session.cursor
    const start = session.cursor
    const end = session.high
    return Readable.from(replaySession(this.replayCtx, session, client, token, session.copies.slice(), start, end))
  }

  // ------------------------------------------------------------------ incoming QoS 2

  async incomingStorePacket (client: ClientLike, packet: PacketLike): Promise<void> {
    const stored = new QueuedPacket(packet) as unknown as PlainPacket
    stored.messageId = packet.messageId
    const messageId = packet.messageId as number
    this.incomingOf(client.id).set(messageId, stored)
    await this.writer.writeAndWait([{ type: 'put', key: incomingKey(client.id, messageId), value: encodePacket(stored) }])
  }

  async incomingGetPacket (client: ClientLike, packet: PacketLike): Promise<PlainPacket> {
    const stored = this.incoming.get(client.id)?.get(packet.messageId as number)
    if (stored === undefined) throw new Error('no such packet')
    return stored
  }

  async incomingDelPacket (client: ClientLike, packet: PacketLike): Promise<void> {
    const store = this.incoming.get(client.id)
    const messageId = packet.messageId as number
    if (store === undefined || !store.delete(messageId)) throw new Error('no such packet')
    if (store.size === 0) this.incoming.delete(client.id)
    await this.writer.writeAndWait([{ type: 'del', key: incomingKey(client.id, messageId) }])
  }

  async cleanIncoming (client: ClientLike): Promise<void> {
    const store = this.incoming.get(client.id)
    if (store === undefined) return
    this.incoming.delete(client.id)
    const ops: MetaOp[] = []
    for (const messageId of store.keys()) ops.push({ type: 'del', key: incomingKey(client.id, messageId) })
    await this.writer.writeAndWait(ops)
  }

  // ------------------------------------------------------------------ wills

  async putWill (client: ClientLike, packet: PacketLike): Promise<void> {
    packet.brokerId = this._broker?.id
    packet.clientId = client.id
    this.wills.set(client.id, packet)
    await this.writer.writeAndWait([{ type: 'put', key: willKey(client.id), value: encodePacket(packet) }])
  }

  async getWill (client: ClientLike): Promise<PlainPacket | undefined> {
    return this.wills.get(client.id)
  }

  async delWill (client: ClientLike): Promise<PlainPacket | undefined> {
    const will = this.wills.get(client.id)
    if (will === undefined) return undefined
    this.wills.delete(client.id)
    await this.writer.writeAndWait([{ type: 'del', key: willKey(client.id) }])
    return will
  }

  streamWill (brokers: Record<string, unknown> = {}): Readable {
    const out: PlainPacket[] = []
    for (const will of this.wills.values()) if (brokers[will.brokerId as string] === undefined) out.push(will)
    return Readable.from(out)
  }

  // ------------------------------------------------------------------ cursors

  private sessionOf (clientId: string, cursor: number): Session {
    let session = this.sessions.get(clientId)
    if (session === undefined) {
      session = new Session(clientId, cursor)
      this.sessions.set(clientId, session)
    }
    return session
  }

  private incomingOf (clientId: string): Map<number, PlainPacket> {
    let store = this.incoming.get(clientId)
    if (store === undefined) {
      store = new Map()
      this.incoming.set(clientId, store)
    }
    return store
  }

  private isConnected (clientId: string): boolean {
    const clients = this._broker?.clients
    return clients !== undefined && clients[clientId] !== undefined
  }

  private readonly persistedKeys = new WeakSet<Session>()
  private hasPersistedCursor (session: Session): boolean { return this.persistedKeys.has(session) }

  // How far a cursor may be persisted: never past a record aedes has not routed yet (the session
  // may still be owed it), nor past what the log has acknowledged. The broker routes a QoS 1
  // message before its record is durable (broker.ts), so a connected subscriber can ack records a
  // crash then cuts off; their offsets are reused by the next records, which a cursor persisted
  // past them would skip. Clamped, the session gets those offsets again after a crash (at worst a
  // duplicate of a message it saw just before the crash; QoS 1 allows it).
  private persistLimit (): number {
    const lowest = this.watermark?.lowest ?? Infinity
    const acked = this.log.ackedOffset
    return acked < lowest ? acked : lowest
  }

  private cursorOp (session: Session, limit = this.persistLimit()): MetaOp {
    session.persistedCursor = session.cursor < limit ? session.cursor : limit
    this.persistedKeys.add(session)
    return { type: 'put', key: cursorKey(session.clientId), value: encodeOffset(session.persistedCursor) }
  }

  private cursorMoved (session: Session): void {
    this.dirty.add(session)
    // Backwards (a late record, see session.ts): persist soon, and tell retention at once, so a
    // crash or a retention pass cannot lose what the old cursor had skipped.
    if (session.cursor < session.persistedCursor) {
      this.log.setReader(readerName(session.clientId), session.cursor)
      if (!this.urgentScheduled) {
        this.urgentScheduled = true
        setImmediate(() => { this.urgentScheduled = false; this.flushCursors() })
      }
    }
  }

  // Writes changed cursors in one batch. Not a sync write per ack: after a crash a session may
  // get again the QoS 1 messages acked in the last cursorFlushMs, which QoS 1 (at least once)
  // allows. Idle sessions follow the end of the log so they do not pin retention.
  private flushCursors (): void {
    // Idle sessions follow the end of the log, but not past a record still being routed nor past
    // what the log has acknowledged (persistLimit).
    const limit = this.persistLimit()
    const end = this.log.endOffset < limit ? this.log.endOffset : limit
    if (end !== this.lastEndSeen) {
      this.lastEndSeen = end
      for (const session of this.sessions.values()) {
        if (session.idle && session.high < end) {
          session.high = end
          if (session.recompute()) this.dirty.add(session)
        }
      }
    }
    if (this.dirty.size === 0) return
    const ops: MetaOp[] = []
    const moved: Array<[string, number]> = []
    let held: Session[] | null = null
    for (const session of this.dirty) {
      if (session.cursor === session.persistedCursor && this.hasPersistedCursor(session)) continue
      const target = session.cursor < limit ? session.cursor : limit
      // Held back by the limit: stays dirty, so it is written again once the limit moves on.
      if (target < session.cursor) (held ??= []).push(session)
      if (target === session.persistedCursor && this.hasPersistedCursor(session)) continue
      ops.push(this.cursorOp(session, limit))
      pushPassedDoneKeys(session, ops)
      moved.push([session.clientId, session.persistedCursor])
    }
    this.dirty.clear()
    if (held !== null) for (const session of held) this.dirty.add(session)
    if (ops.length === 0) return
    this.writer.writeAndWait(ops).then(() => {
      for (const [clientId, cursor] of moved) {
        const session = this.sessions.get(clientId)
        if (session !== undefined) this.log.setReader(readerName(clientId), Math.min(cursor, session.cursor))
      }
    }, (err: Error) => {
      this.logger.error({ code: 'TRIB_ERR_META_IO', err, sessions: moved.length }, 'writing session cursors failed')
    })
  }

  // For tests and metrics: the state of one session.
  sessionInfo (clientId: string): { cursor: number, persistedCursor: number, tracked: number, copies: number } | undefined {
    const s = this.sessions.get(clientId)
    if (s === undefined) return undefined
    return { cursor: s.cursor, persistedCursor: s.persistedCursor, tracked: s.trackedCount, copies: s.copies.length }
  }
}

function encodeSub (r: SubRecord): Buffer {
  const v: Record<string, unknown> = { qos: r.qos, rh: r.rh, rap: r.rap, nl: r.nl, since: r.since }
  if (r.subscriptionIdentifier !== undefined) v.sid = r.subscriptionIdentifier
  return Buffer.from(JSON.stringify(v), 'utf8')
}
