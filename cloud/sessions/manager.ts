// Persistent sessions of cloud subscribers, held by whichever node the client is connected to.
// Lifecycle of one session on this node:
//   CONNECT clean=false -> open(): if another live process holds the session, ask it to hand
//     over (it writes its final cursor, gives the session up and disconnects its client, as MQTT
//     session takeover [MQTT-3.1.4-2] does within one broker); then take the record with
//     compare-and-set (epoch + 1, holder = this process) and load subscriptions + cursor. A holder
//     that does not answer (dead, stuck) is fenced: its next write fails the CAS.
//   'client' (registered) -> bind(); 'clientReady' (CONNACK sent) -> start the follower, which
//     replays from the cursor and goes live (follower.ts).
//   acks move the follower's cursor -> written every FLUSH_MS (batched, never ahead of acks),
//     together with the lease renewal (heldUntilMs) when that is due.
//   disconnect -> final cursor written, holder cleared; the session stays until it expires.
// A write that loses its CAS to another holder (or epoch) means the session moved: the follower
// stops and the client is disconnected (MQTT session takeover [MQTT-3.1.4-2], across nodes).
import { randomBytes } from 'node:crypto'
import { tributaryError } from '../../src/errors/index.js'
import type { Logger } from '../../src/log/index.js'
import type { QoSLevel } from '../../src/protocol/bridge-frames.js'
import type { CloudTopicTemplate } from '../dispatcher.js'
import type { CloudStore } from '../store/types.js'
import { SessionFollower, type DeliveryClient, type ResumeState } from './follower.js'
import type { SessionKV } from './kv.js'
import { isExpired, type SessionRecord, type SessionSub } from './record.js'
import { StoreTail } from './tail.js'

// Cursor writes are batched this often: after a crash of the node, a client may receive again
// what it acked in the last interval (QoS 1 is at least once).
const FLUSH_MS = 250
// A session taken at CONNECT whose connection never got registered (it failed in between) is
// given back after this.
const UNBOUND_MS = 30_000
// Bounded: a session contended by more connects than this at once is a client bug.
const MAX_CAS_ATTEMPTS = 8
// Subscriptions of one persistent session: its record must fit one KV value (1 MiB by default,
// ~100 B per filter here) and every store record is matched against each of them.
export const MAX_SESSION_SUBS = 1000
// Session removals waiting for the record store (each ~100 B): a long outage with many clean
// CONNECTs of former persistent clients must not grow memory without end.
const MAX_PENDING_CLEANS = 10_000
// Subscriptions replaced or removed whose messages may still be sent again (record.ts `until`):
// they leave the record as the cursor passes them; a client that keeps changing subscriptions
// while an old message stays unacknowledged is stopped here (the record must fit a KV value).
const MAX_RETIRED_SUBS = 1000

function noop (): void {}

function freshSession (cursor: number, epoch: number): SessionRecord {
  return { subs: [], cursor, packetId: 1, sentUpTo: cursor, released: [], acked: [], holder: '', epoch, heldUntilMs: 0, touchedMs: 0 }
}

function activeSubs (subs: SessionSub[]): SessionSub[] {
  return subs.filter((s) => s.until === undefined)
}

// The subscription at i no longer matches records from `at` on; records before it (already
// matched, maybe sent and owed again) still do when it was QoS>0 (packet ids depend on it).
function retire (subs: SessionSub[], i: number, at: number): void {
  const s = subs[i]
  if (s.qos > 0 && at > s.since) subs[i] = { ...s, until: at }
  else subs.splice(i, 1)
}

function pruneRetired (subs: SessionSub[], cursor: number): SessionSub[] {
  return subs.some((s) => s.until !== undefined && s.until <= cursor) ? subs.filter((s) => s.until === undefined || s.until > cursor) : subs
}

function sameResume (r: SessionRecord, s: ResumeState): boolean {
  return r.cursor === s.cursor && r.packetId === s.packetId && r.sentUpTo === s.sentUpTo && sameIds(r.released, s.released) && sameIds(r.acked, s.acked)
}

function sameIds (a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

export interface SessionClient extends DeliveryClient {
  id: string
  clean: boolean
  close: () => void
}

export interface SessionManagerOptions {
  kv: SessionKV
  store: CloudStore
  template: CloudTopicTemplate
  nodeId: string
  leaseTtlMs: number
  expiryMs: number
  windowMessages: number
  logger: Logger
  now: () => number
}

interface Held {
  clientId: string
  record: SessionRecord
  revision: number
  client: SessionClient | undefined
  follower: SessionFollower | undefined
  openedAtMs: number
  dirty: boolean
  chain: Promise<boolean>
  // A write asked for by PUBRECs, not started yet: later PUBRECs join it (group commit).
  durable: Promise<boolean> | undefined
}

export class SessionManager {
  readonly holder: string
  private readonly held = new Map<string, Held>()
  // Clean CONNECTs whose session removal failed (store unreachable): client id -> when.
  private readonly pendingCleans = new Map<string, number>()
  private cleaning = false
  // Final writes of disconnected sessions, awaited by close().
  private readonly releasing = new Set<Promise<boolean>>()
  private timer: NodeJS.Timeout | undefined
  private readonly kv: SessionKV
  private readonly logger: Logger
  private readonly now: () => number
  private readonly tail: StoreTail
  // The renewal rewrites a connected session's record, which also keeps the JetStream bucket's
  // TTL (the session expiry) from removing it: so at most half the expiry.
  private readonly leaseTtlMs: number

  constructor (private readonly o: SessionManagerOptions) {
    this.leaseTtlMs = Math.min(o.leaseTtlMs, o.expiryMs / 2)
    this.kv = o.kv
    this.logger = o.logger
    this.now = o.now
    this.tail = new StoreTail(o.store, o.logger)
    // Per process: a restarted node with the same id is a different holder.
    this.holder = `${o.nodeId}#${randomBytes(8).toString('hex')}`
  }

  start (): void {
    this.kv.onReleaseRequest(this.holder, async (clientId) => { await this.release(clientId) })
    this.timer = setInterval(() => { this.tick() }, FLUSH_MS)
    this.timer.unref()
  }

  // CONNECT with clean=false on this node: take the session. Returns its subscriptions.
  async open (clientId: string): Promise<SessionSub[]> {
    const previous = this.held.get(clientId)
    if (previous !== undefined) {
      // A second connection of this client to this node (aedes closes the first one): keep what
      // the first one acked, so the new connection resumes exactly there.
      this.held.delete(clientId)
      previous.follower?.stop()
      this.snapshot(previous)
      await this.write(previous, true)
    }
    await this.retryClean(clientId)
    for (let attempt = 1; ; attempt++) {
      let cur = await this.kv.get(clientId)
      if (cur !== undefined && this.heldElsewhere(cur.record)) {
        const answered = await this.kv.requestRelease(clientId, cur.record.holder)
        this.logger.debug({ clientId, holder: cur.record.holder, answered }, 'persistent session held by another node: asked it to hand over')
        cur = await this.kv.get(clientId)
      }
      const now = this.now()
      const base = cur === undefined || isExpired(cur.record, now, this.o.expiryMs)
        ? freshSession(await this.o.store.endSeq(), cur?.record.epoch ?? 0)
        : cur.record
      const record: SessionRecord = { ...base, holder: this.holder, epoch: base.epoch + 1, heldUntilMs: now + this.leaseTtlMs, touchedMs: now }
      const out = await this.kv.put(clientId, record, cur?.revision ?? 0)
      if (out.status === 'ok') {
        const h: Held = { clientId, record, revision: out.revision, client: undefined, follower: undefined, openedAtMs: now, dirty: false, chain: Promise.resolve(true), durable: undefined }
        this.held.set(clientId, h)
        const from = cur?.record.holder ?? ''
        this.logger.debug({ clientId, epoch: record.epoch, cursor: record.cursor, subs: record.subs.length, from }, 'persistent session opened')
        return activeSubs(record.subs)
      }
      if (attempt >= MAX_CAS_ATTEMPTS) throw tributaryError('TRIB_ERR_MQTT_SESSION', `session of ${clientId} is contended: gave up after ${attempt} attempts`, { clientId })
    }
  }

  // aedes registered the connection (after any local takeover closed the previous one).
  bind (client: SessionClient): void {
    const h = this.held.get(client.id)
    if (h === undefined) {
      // The session was handed over or lost between CONNECT and now: this connection would get
      // nothing; close it (the client reconnects and takes the session properly).
      this.logger.info({ clientId: client.id }, 'persistent session moved away while connecting: closing the connection')
      client.close()
      return
    }
    if (h.client === undefined) h.client = client
  }

  // CONNACK is out: deliver from the cursor.
  ready (client: SessionClient): void {
    const h = this.held.get(client.id)
    if (h === undefined || h.client !== client || h.follower !== undefined) return
    h.follower = new SessionFollower(this.o.store, this.tail, this.o.template, client, h.record.subs, h.record, this.o.windowMessages, () => { h.dirty = true }, this.logger)
    h.follower.start()
  }

  async detach (client: SessionClient): Promise<void> {
    const h = this.held.get(client.id)
    if (h === undefined || h.client !== client) return
    this.held.delete(client.id)
    h.follower?.stop()
    this.snapshot(h)
    h.record = { ...h.record, holder: '', heldUntilMs: 0, touchedMs: this.now() }
    const p = this.write(h, true)
    this.releasing.add(p)
    try { await p } finally { this.releasing.delete(p) }
  }

  async addSubscriptions (clientId: string, subs: ReadonlyArray<{ topic: string, qos: number }>): Promise<void> {
    let h = this.held.get(clientId)
    if (h === undefined) { await this.open(clientId); h = this.held.get(clientId)! }
    const since = await this.o.store.endSeq()
    // Records before `at` were matched already (and may be sent again after a reconnect, with the
    // same packet ids): a QoS>0 subscription replaced here keeps matching them (until = at).
    const at = this.readUpTo(h)
    const next = h.record.subs.slice()
    for (const s of subs) {
      if (s.qos > 2 || s.qos < 0) continue // a refused subscription (0x80)
      const i = next.findIndex((x) => x.topic === s.topic && x.until === undefined)
      if (i >= 0 && next[i].qos === s.qos && s.qos > 0) continue // unchanged
      // [MQTT-3.8.4-3] a replaced QoS>0 subscription goes on without a gap: nothing owed is lost.
      const keep = i >= 0 && next[i].qos > 0 && s.qos > 0
      const sub: SessionSub = { topic: s.topic, qos: s.qos as QoSLevel, since: keep ? Math.max(next[i].since, at) : since }
      if (i >= 0) retire(next, i, at)
      next.push(sub)
    }
    this.checkSubsLimit(clientId, next)
    await this.updateSubs(h, next)
  }

  async removeSubscriptions (clientId: string, topics: readonly string[]): Promise<void> {
    const h = this.held.get(clientId)
    if (h === undefined) return
    const at = this.readUpTo(h)
    const next = h.record.subs.slice()
    for (let i = next.length - 1; i >= 0; i--) if (next[i].until === undefined && topics.includes(next[i].topic)) retire(next, i, at)
    await this.updateSubs(h, next)
  }

  private readUpTo (h: Held): number {
    return h.follower?.readUpTo ?? Math.max(h.record.cursor, h.record.sentUpTo)
  }

  private checkSubsLimit (clientId: string, subs: SessionSub[]): void {
    let active = 0
    for (const s of subs) if (s.until === undefined) active++
    if (active > MAX_SESSION_SUBS) throw tributaryError('TRIB_ERR_MQTT_SESSION', `persistent session ${clientId} would have ${active} subscriptions (at most ${MAX_SESSION_SUBS})`, { clientId })
    if (subs.length - active > MAX_RETIRED_SUBS) throw tributaryError('TRIB_ERR_MQTT_SESSION', `persistent session ${clientId} replaced ${subs.length - active} subscriptions while messages of them are unacknowledged (at most ${MAX_RETIRED_SUBS})`, { clientId })
  }

  private async updateSubs (h: Held, subs: SessionSub[]): Promise<void> {
    h.follower?.setSubs(subs)
    this.snapshot(h)
    h.record = { ...h.record, subs: pruneRetired(subs, h.record.cursor) }
    if (!await this.write(h, true)) throw tributaryError('TRIB_ERR_MQTT_SESSION', `session of ${h.clientId} was taken over`, { clientId: h.clientId })
  }

  // CONNECT with clean=true: the previous session, wherever it was, ends [MQTT-3.1.2-6].
  // With the record store unreachable the CONNECT still succeeds (a clean session needs nothing
  // from it); the removal is retried every flush until it works, and before this node opens the
  // session again.
  async clean (clientId: string): Promise<void> {
    const h = this.held.get(clientId)
    if (h !== undefined) { this.held.delete(clientId); h.follower?.stop() }
    const at = this.now()
    try {
      await this.removeSession(clientId, undefined)
    } catch (err) {
      this.logger.warn({ err, clientId }, 'cannot remove the persistent session of a clean CONNECT now; retrying in the background')
      if (this.pendingCleans.size >= MAX_PENDING_CLEANS) {
        const [oldest] = this.pendingCleans.keys()
        this.pendingCleans.delete(oldest)
        this.logger.warn({ clientId: oldest }, 'too many pending session removals: gave one up')
      }
      this.pendingCleans.set(clientId, at)
    }
  }

  // `cleanAtMs` (a retried removal): keep a record written after that clean CONNECT, it belongs
  // to a newer session of the client.
  private async removeSession (clientId: string, cleanAtMs: number | undefined): Promise<void> {
    const cur = await this.kv.get(clientId)
    if (cur === undefined) return
    if (cleanAtMs !== undefined && cur.record.touchedMs > cleanAtMs) return
    if (this.heldElsewhere(cur.record)) await this.kv.requestRelease(clientId, cur.record.holder)
    await this.kv.delete(clientId)
  }

  // One round at a time, in order, stopping at the first failure (the store is still down).
  private retryCleans (): void {
    if (this.cleaning || this.pendingCleans.size === 0) return
    this.cleaning = true
    void (async () => {
      for (const clientId of [...this.pendingCleans.keys()]) await this.retryClean(clientId)
    })().catch(() => {}).finally(() => { this.cleaning = false })
  }

  private async retryClean (clientId: string): Promise<void> {
    const at = this.pendingCleans.get(clientId)
    if (at === undefined) return
    await this.removeSession(clientId, at)
    this.pendingCleans.delete(clientId)
  }

  // Asked even when its lease looks run out (clocks of nodes differ; a holder whose renewals fail
  // may still be delivering): a holder that is gone costs one request answered at once.
  private heldElsewhere (r: SessionRecord): boolean {
    return r.holder !== '' && r.holder !== this.holder
  }

  // Another node takes this session: final cursor, give it up, disconnect the client here.
  private async release (clientId: string): Promise<void> {
    const h = this.held.get(clientId)
    if (h === undefined) return
    this.held.delete(clientId)
    h.follower?.stop()
    this.snapshot(h)
    h.record = { ...h.record, holder: '', heldUntilMs: 0, touchedMs: this.now() }
    await this.write(h, true)
    this.logger.info({ clientId }, 'persistent session handed over to another node: disconnecting its client here')
    h.client?.close()
  }

  // QoS 2 PUBREC of a follower's message. Resolves once the record holds it (false: not one of
  // ours); aedes sends the PUBREL only then. So a client can never have completed (PUBCOMP) a
  // message the record does not show as released: after a crash of this node the next holder
  // re-sends that PUBREL, never the PUBLISH, and QoS 2 stays exactly once. A PUBREC whose state
  // cannot be written throws: aedes closes the connection without sending the PUBREL (the
  // client keeps the id and answers the re-sent PUBLISH with PUBREC again).
  async pubrec (clientId: string, messageId: number): Promise<boolean> {
    const h = this.held.get(clientId)
    if (h === undefined || h.follower?.pubrec(messageId) !== true) return false
    if (!await this.writeSoon(h)) throw tributaryError('TRIB_ERR_MQTT_SESSION', `QoS 2 state of session ${clientId} not written: PUBREL withheld, connection closed`, { clientId })
    return true
  }

  // One write of h's current state after the one in flight; callers until it starts share it.
  private async writeSoon (h: Held): Promise<boolean> {
    if (h.durable === undefined) {
      h.durable = h.chain.then(noop, noop).then(async () => {
        h.durable = undefined
        if (this.held.get(h.clientId) !== h) return false
        this.snapshot(h)
        return await this.write(h, false)
      })
    }
    return await h.durable
  }

  // PUBRELs owed at this CONNECT [MQTT-4.4.0-1]: the session's QoS 2 messages whose PUBREC came
  // and whose PUBCOMP did not, in PUBREC order. Asked before the follower starts.
  pendingReleases (clientId: string): number[] {
    const h = this.held.get(clientId)
    return h === undefined || h.follower !== undefined ? [] : h.record.released
  }

  ack (clientId: string, messageId: number): boolean {
    return this.held.get(clientId)?.follower?.ack(messageId) ?? false
  }

  // For tests and metrics.
  info (clientId: string): { cursor: number, epoch: number } | undefined {
    const h = this.held.get(clientId)
    if (h === undefined) return undefined
    return { cursor: h.follower?.cursor ?? h.record.cursor, epoch: h.record.epoch }
  }

  private snapshot (h: Held): void {
    if (h.follower !== undefined) {
      const s = h.follower.resumeState()
      h.record = { ...h.record, ...s, subs: pruneRetired(h.record.subs, s.cursor) }
    }
    h.dirty = false
  }

  private tick (): void {
    const now = this.now()
    this.retryCleans()
    for (const h of this.held.values()) {
      if (h.client === undefined && now - h.openedAtMs > UNBOUND_MS) {
        this.held.delete(h.clientId)
        h.record = { ...h.record, holder: '', heldUntilMs: 0, touchedMs: now }
        void this.write(h, true)
        continue
      }
      const renew = h.record.heldUntilMs - now < (this.leaseTtlMs * 2) / 3
      const cursorMoved = h.dirty && h.follower !== undefined && !sameResume(h.record, h.follower.resumeState())
      if (!renew && !cursorMoved) continue
      this.snapshot(h)
      if (renew) h.record = { ...h.record, heldUntilMs: now + this.leaseTtlMs, touchedMs: now }
      void this.write(h, false)
    }
  }

  // Writes h.record with compare-and-set, one write per session at a time. A conflict with a
  // record that still names this holder and epoch (our own earlier write whose answer was lost)
  // is retried at the new revision; any other conflict means the session moved on: lose it.
  // `detached`: the session is no longer in `held` (disconnect, clean) but this write is ours.
  private async write (h: Held, detached: boolean): Promise<boolean> {
    const run = async (): Promise<boolean> => {
      if (!detached && this.held.get(h.clientId) !== h) return false
      for (let attempt = 1; attempt <= MAX_CAS_ATTEMPTS; attempt++) {
        let out
        try {
          out = await this.kv.put(h.clientId, h.record, h.revision)
        } catch (err) {
          this.logger.warn({ err, clientId: h.clientId }, 'writing a persistent session failed; retried at the next flush')
          h.dirty = true
          return false
        }
        if (out.status === 'ok') { h.revision = out.revision; return true }
        const cur = await this.kv.get(h.clientId)
        if (cur === undefined || cur.record.epoch !== h.record.epoch || (cur.record.holder !== this.holder && cur.record.holder !== '')) {
          this.lose(h, cur?.record.holder ?? '(removed)')
          return false
        }
        h.revision = cur.revision
      }
      return false
    }
    const p = h.chain.then(run, run)
    h.chain = p
    return await p
  }

  private lose (h: Held, to: string): void {
    if (this.held.get(h.clientId) === h) this.held.delete(h.clientId)
    h.follower?.stop()
    this.logger.info({ clientId: h.clientId, to }, 'persistent session taken over elsewhere (fenced): disconnecting its client here')
    h.client?.close()
  }

  async close (): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.tail.close()
    await Promise.allSettled([...this.releasing])
    const all = [...this.held.values()]
    this.held.clear()
    const now = this.now()
    await Promise.all(all.map(async (h) => {
      h.follower?.stop()
      this.snapshot(h)
      h.record = { ...h.record, holder: '', heldUntilMs: 0, touchedMs: now }
      await this.write(h, true)
    }))
  }
}
