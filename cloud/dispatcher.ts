// Publishes stored records to the cloud's MQTT front end as `up/{edge}/{topic}` (template),
// in store order, from a cursor kept in the store (so it resumes after a restart; the window
// between the last saved cursor and a crash is published again: at-least-once to subscribers,
// exactly-once in the store).
import type { Aedes, PublishPacket } from 'aedes'
import type { Logger } from '../src/log/index.js'
import type { CloudStats } from './metrics.js'
import type { CloudStore, StoreReadBatch, StoredRecord } from './store/types.js'

// A store that can leave out, while reading, messages the dispatcher would skip (embedded.ts).
interface DispatchReader {
  readForDispatch: (fromSeq: number, maxScanned: number, keep: (edgeId: string, topic: string, retain: boolean) => boolean, quiet: (edgeId: string) => boolean) => Promise<StoreReadBatch & { scanned: number }>
}

const CURSOR = 'mqtt-dispatch'
// Records per store read: one batch of publishes in flight at a time bounds memory (8192 x ~200 B).
// Large, because the embedded store keeps up to 1,024 messages per log record: a read that ends
// inside one decodes that record again on the next read.
const READ_BATCH_RECORDS = 8192
const CURSOR_SAVE_INTERVAL_MS = 1000
// Cloud topics whose subscriber presence is cached (~100 B each); the cache restarts when full.
const MAX_PRESENCE_TOPICS = 100_000

export class CloudTopicTemplate {
  private readonly before: string
  private readonly between: string
  private readonly after: string
  private readonly edgeFirst: boolean

  constructor (template: string) {
    const e = template.indexOf('{edge}')
    const t = template.indexOf('{topic}')
    if (e === -1 || t === -1) throw new RangeError(`topic template "${template}" needs {edge} and {topic}`)
    this.edgeFirst = e < t
    const [first, firstLen, second, secondLen] = this.edgeFirst ? [e, 6, t, 7] : [t, 7, e, 6]
    this.before = template.slice(0, first)
    this.between = template.slice(first + firstLen, second)
    this.after = template.slice(second + secondLen)
  }

  // The topic levels every cloud topic of `edgeId` starts with, when the template puts the edge
  // in whole levels before the topic (e.g. up/{edge}/{topic} -> ['up', edgeId]); else undefined.
  edgeLevels (edgeId: string): string[] | undefined {
    if (!this.edgeFirst || this.after !== '') return undefined
    const prefix = this.before + edgeId + this.between
    if (!prefix.endsWith('/') || (this.before !== '' && !this.before.endsWith('/')) || !this.between.startsWith('/')) return undefined
    return prefix.slice(0, -1).split('/')
  }

  render (edgeId: string, topic: string): string {
    return this.edgeFirst
      ? this.before + edgeId + this.between + topic + this.after
      : this.before + topic + this.between + edgeId + this.after
  }
}

// The part of a qlobber trie (aedes' mqemitter matcher, the session persistence's QlobberSub)
// that mayMatchUnder reads: nested Maps keyed by topic level, wildcards as their own keys.
interface QlobberLike { _trie: Map<string, unknown>, _separator: string, _wildcard_one: string, _wildcard_some: string }
function isQlobber (x: unknown): x is QlobberLike {
  const q = x as Partial<QlobberLike> | undefined
  return q !== undefined && q !== null && q._trie instanceof Map && typeof q._separator === 'string' && typeof q._wildcard_one === 'string' && typeof q._wildcard_some === 'string'
}

// Whether some filter in the trie may match a topic that starts with `levels` and has at least
// one level more. Conservative: true when in doubt.
function mayMatchUnder (q: QlobberLike, levels: readonly string[]): boolean {
  const walk = (node: Map<string, unknown>, i: number): boolean => {
    if (node.has(q._wildcard_some)) return true // '#' here matches everything below
    if (i === levels.length) {
      for (const k of node.keys()) if (k !== q._separator) return true // a deeper filter
      return false
    }
    for (const k of [levels[i], q._wildcard_one]) {
      const child = node.get(k)
      if (child instanceof Map && walk(child, i + 1)) return true
      if (child !== undefined && !(child instanceof Map)) return true
    }
    return false
  }
  return walk(q._trie, 0)
}

// Whether a cloud topic has any subscriber: an online session's subscription (aedes' mqemitter
// trie) or a persistent session's (the persistence's subscriptionsByTopic, online or not).
// Answers are cached per topic. Correctness rests on one rule: a cached "no subscriber" is
// dropped whenever a SUBSCRIBE completes. aedes emits 'subscribe' in the same tick as it writes the
// SUBACK, so every message dispatched after a client holds its SUBACK sees the new subscription
// (MQTT promises nothing for messages published while a SUBSCRIBE is in progress). A lookup that
// started before a SUBSCRIBE completed is not cached (generation check). Restored persistent
// sessions add no subscription the persistence did not already hold.
// If aedes' trie is not reachable (a different aedes version), every topic counts as subscribed.
class SubscriberPresence {
  // edge id -> edge topic -> has a subscriber (keyed by the stored strings: no cloud topic is
  // rendered for a message nobody receives).
  private readonly answers = new Map<string, Map<string, boolean>>()
  private size = 0
  private generation = 0
  private readonly matcher: { match: (topic: string) => unknown[] } | undefined
  private readonly persistence: { subscriptionsByTopic: (topic: string) => Promise<unknown[]> }
  private readonly persistenceTrie: QlobberLike | undefined
  // edge id -> no subscription can match its topics (dropped with the other answers).
  private readonly quietEdges = new Map<string, boolean>()

  constructor (aedes: Aedes, private readonly template: CloudTopicTemplate) {
    const internals = aedes as unknown as { mq?: { _matcher?: { match?: unknown } }, persistence: { subscriptionsByTopic: (topic: string) => Promise<unknown[]> } }
    const mq = internals.mq
    this.persistence = internals.persistence
    this.matcher = typeof mq?._matcher?.match === 'function' ? mq._matcher as { match: (topic: string) => unknown[] } : undefined
    // The session persistence's subscription trie: src/mqtt/persistence.ts keeps one (`trie`),
    // cloud/sessions/persistence.ts wraps that one (`inner`). Not found: never quiet.
    const p = internals.persistence as { trie?: unknown, inner?: { trie?: unknown } }
    const trie = p.trie ?? p.inner?.trie
    this.persistenceTrie = isQlobber(trie) ? trie : undefined
    const forget = (): void => { this.generation++; this.answers.clear(); this.size = 0; this.quietEdges.clear() }
    aedes.on('subscribe', forget)
    // Fewer subscribers: not needed for correctness (a stale "yes" only costs a publish), but it
    // lets the cache learn that a topic went quiet.
    aedes.on('unsubscribe', forget)
    aedes.on('clientDisconnect', forget)
  }

  // true when no subscription, online (aedes' trie) or of a persistent session (the session
  // persistence's trie), can match any cloud topic of this edge: then the dispatcher need not
  // look at the edge's messages one by one (retained ones aside). Walks the two tries along the
  // edge's topic prefix; false whenever it cannot tell (other template, other persistence).
  quiet (edgeId: string): boolean {
    let q = this.quietEdges.get(edgeId)
    if (q === undefined) {
      const levels = this.template.edgeLevels(edgeId)
      q = levels !== undefined && this.matcher !== undefined && this.persistenceTrie !== undefined &&
        !mayMatchUnder(this.matcher as unknown as QlobberLike, levels) && !mayMatchUnder(this.persistenceTrie, levels)
      if (this.quietEdges.size >= MAX_PRESENCE_TOPICS) this.quietEdges.clear()
      this.quietEdges.set(edgeId, q)
    }
    return q
  }

  // true: subscribed or unknown (publish); false: known to have no subscriber (skip).
  has (edgeId: string, topic: string): boolean {
    if (this.matcher === undefined) return true
    return this.answers.get(edgeId)?.get(topic) ?? true
  }

  known (edgeId: string, topic: string): boolean {
    return this.matcher === undefined || this.answers.get(edgeId)?.has(topic) === true
  }

  async learn (records: readonly StoredRecord[]): Promise<void> {
    if (this.matcher === undefined) return
    const gen = this.generation
    const todo = new Map<string, [string, string]>() // cloud topic -> [edge, topic]
    for (const r of records) if (!this.known(r.edgeId, r.topic)) todo.set(this.template.render(r.edgeId, r.topic), [r.edgeId, r.topic])
    const found = await Promise.all([...todo.keys()].map(async (t) => {
      if (this.matcher!.match(t).length > 0) return true
      const persisted = await this.persistence.subscriptionsByTopic(t)
      return persisted.length > 0
    }))
    if (gen !== this.generation) return
    // Bounded: distinct topics of many devices would otherwise grow it forever.
    if (this.size + todo.size > MAX_PRESENCE_TOPICS) { this.answers.clear(); this.size = 0 }
    let i = 0
    for (const [edgeId, topic] of todo.values()) {
      let m = this.answers.get(edgeId)
      if (m === undefined) { m = new Map(); this.answers.set(edgeId, m) }
      m.set(topic, found[i++])
      this.size++
    }
  }
}

export class Dispatcher {
  private seq = 0
  private stopped = false
  private running: Promise<void> | undefined
  private lastSaved = 0
  private savedSeq = -1
  private saving: Promise<void> = Promise.resolve()
  private stopWake: (() => void) | undefined
  private readonly presence: SubscriberPresence
  private readonly filtered: DispatchReader | undefined
  private readonly keep: (edgeId: string, topic: string, retain: boolean) => boolean
  private readonly quiet: (edgeId: string) => boolean

  constructor (
    private readonly store: CloudStore,
    private readonly aedes: Aedes,
    private readonly template: CloudTopicTemplate,
    private readonly stats: CloudStats,
    private readonly logger: Logger,
    // Cluster (issue 5): every node tails the whole store for its own subscribers, so each keeps
    // its own cursor (name per node id), and a node seen for the first time starts at the end
    // instead of re-publishing the cluster's whole history.
    private readonly cursorName: string = CURSOR,
    private readonly newStartsAtEnd: boolean = false
  ) {
    this.presence = new SubscriberPresence(aedes, template)
    const f = store as Partial<DispatchReader>
    this.filtered = typeof f.readForDispatch === 'function' ? f as DispatchReader : undefined
    // Unknown topics are kept (publishAll learns them); known unsubscribed ones are left out.
    this.keep = (edgeId, topic, retain) => retain || this.presence.has(edgeId, topic)
    this.quiet = (edgeId) => this.presence.quiet(edgeId)
  }

  async start (): Promise<void> {
    const saved = await this.store.getCursor(this.cursorName)
    this.seq = saved ?? (this.newStartsAtEnd ? await this.store.endSeq() : 0)
    this.stats.dispatchSeq = this.seq
    this.logger.info({ fromSeq: this.seq }, 'dispatching stored records to MQTT subscribers')
    this.running = this.loopUntilStopped()
  }

  // A store outage (e.g. the whole NATS cluster down longer than the store's retry budget) must
  // not end delivery for good: log, wait, and resume from the current position.
  private async loopUntilStopped (): Promise<void> {
    while (!this.stopped) {
      try {
        await this.loop()
      } catch (err) {
        if (this.stopped) return
        this.logger.error({ err, seq: this.seq }, 'dispatcher failed; retrying in 1 s')
        await new Promise<void>((resolve) => { const t = setTimeout(resolve, 1000); this.stopWake = () => { clearTimeout(t); resolve() } })
      }
    }
  }

  private async loop (): Promise<void> {
    while (!this.stopped) {
      const b = await this.read()
      if (b.records.length === 0 && b.scanned === 0) {
        this.seq = b.nextSeq
        this.saveCursorSoon()
        // stop() may have run during the awaits above, when stopWake was not this wait's yet:
        // waiting now would never end (the store closes only after the dispatcher stopped).
        if (this.stopped) return
        await Promise.race([this.store.waitForData(this.seq), new Promise<void>((resolve) => { this.stopWake = resolve })])
        continue
      }
      await this.publishAll(b.records)
      this.stats.dispatched += b.scanned
      this.seq = b.nextSeq
      this.stats.dispatchSeq = this.seq
      this.saveCursorSoon()
    }
  }

  // All publishes of a batch are issued at once and awaited together; aedes routes them in call
  // order to each subscriber. Records whose cloud topic nobody subscribes to (online or in a
  // persistent session) are not handed to aedes at all: that routing was most of the dispatch
  // cost in a backlog drain with no cloud subscriber, for nothing.
  private async publishAll (records: StoredRecord[]): Promise<void> {
    const presence = this.presence
    for (let i = 0; i < records.length; i++) {
      if (!presence.known(records[i].edgeId, records[i].topic)) { await presence.learn(records); break }
    }
    await new Promise<void>((resolve) => {
      let left = 1
      const done = (): void => { if (--left === 0) resolve() }
      for (let i = 0; i < records.length; i++) {
        const r = records[i]
        // Retained messages are always published: aedes stores them for later subscribers.
        if (!r.retain && !presence.has(r.edgeId, r.topic)) continue
        left++
        const packet = {
          cmd: 'publish',
          topic: this.template.render(r.edgeId, r.topic),
          payload: r.payload,
          qos: r.qos,
          retain: r.retain,
          dup: false
        } as unknown as PublishPacket
        this.aedes.publish(packet, done)
      }
      done()
    })
  }

  // The embedded store can leave out messages nobody receives while it reads them (no object
  // per skipped message); other stores return everything and publishAll skips.
  private async read (): Promise<StoreReadBatch & { scanned: number }> {
    if (this.filtered !== undefined) return await this.filtered.readForDispatch(this.seq, READ_BATCH_RECORDS, this.keep, this.quiet)
    const b = await this.store.read(this.seq, { maxRecords: READ_BATCH_RECORDS })
    return { status: b.status, records: b.records, nextSeq: b.nextSeq, scanned: b.records.length }
  }

  // The periodic save runs beside the loop, in order: a store write must not hold up delivery
  // (at 5,000 msgs/s a 20 ms put once a second would delay 2% of the messages: the p99).
  private saveCursorSoon (): void {
    const now = Date.now()
    if (this.seq === this.savedSeq || now - this.lastSaved < CURSOR_SAVE_INTERVAL_MS) return
    this.lastSaved = now
    this.savedSeq = this.seq
    const seq = this.seq
    this.saving = this.saving.then(async () => { await this.store.setCursor(this.cursorName, seq) }).catch((err: Error) => {
      this.savedSeq = -1 // saved again at the next interval
      if (!this.stopped) this.logger.warn({ err, seq }, 'dispatcher cursor not saved (will retry)')
    })
  }

  private async saveCursor (): Promise<void> {
    await this.saving
    if (this.seq !== this.savedSeq) await this.store.setCursor(this.cursorName, this.seq)
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.stopWake?.()
    await this.running
    await this.saveCursor().catch(() => {})
  }
}
