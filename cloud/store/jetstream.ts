// The cloud store on a NATS JetStream cluster (issue 5): the same CloudStore contract as the
// embedded store, with every byte replicated by JetStream (R3 in a cluster), so cloud nodes hold
// no state of their own and any node can serve any edge. Design and limits: JETSTREAM.md.
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import type { Logger } from 'pino'
import type {
  AppendBatchInput, AppendOutcome, CloudStore, Downlink, DownlinkInput, Lease, LeaseOutcome,
  PendingDownlinks, StoreReadBatch, StoreReadLimits, StoreStats
} from './types.js'
import { isTributaryError, tributaryError } from '../../src/errors/index.js'
import { silentLogger } from '../../src/log/index.js'
import { storeNames, type StoreNames } from './jetstream/subjects.js'
import { ensureLayout } from './jetstream/setup.js'
import { KvLeases } from './jetstream/leases.js'
import { OffsetMirror } from './jetstream/offsets.js'
import { Uplink } from './jetstream/uplink.js'
import { Downlinks } from './jetstream/downlinks.js'

export interface JetStreamStoreOptions {
  // nats://host:port URLs of the cluster (any subset: the client learns the rest).
  servers: readonly string[]
  // Names streams and buckets (<PREFIX>_UP, <PREFIX>_DOWN, ...); lets deployments share an account.
  prefix?: string
  // Stream and bucket replicas when they are created. Default: 3 when 3+ servers are given, else 1.
  replicas?: number
  // Chunk body limit, below the server's max_payload (1 MiB by default).
  maxChunkBytes?: number
  // One append keeps retrying this long through leader elections and node losses.
  retryBudgetMs?: number
  // Timeout of one JetStream request (publish ack, API call).
  requestTimeoutMs?: number
  // Uplink retention; 0 = unlimited.
  uplinkMaxAgeMs?: number
  uplinkMaxBytes?: number
  // Downlink stream retention (acked downlinks are not deleted, see jetstream/downlinks.ts).
  downlinkMaxAgeMs?: number
  // Nats-Msg-Id duplicate window (a safety net; idempotency does not depend on it).
  duplicateWindowMs?: number
  // Client pings: a frozen server is detected after about pingIntervalMs * (maxPingOut + 1).
  pingIntervalMs?: number
  logger?: Logger
}

// "nats://a:4222,nats://b:4222" (the --store flag) -> URL list. Undefined when not a NATS spec.
export function parseNatsServers (spec: string): string[] | undefined {
  const urls = spec.split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (urls.length === 0 || !urls.every((u) => /^(nats|tls):\/\/[^\s,]+$/.test(u))) return undefined
  return urls
}

const DEFAULTS = {
  prefix: 'TRIB',
  maxChunkBytes: 768 * 1024,
  retryBudgetMs: 20_000,
  requestTimeoutMs: 5_000,
  uplinkMaxAgeMs: 0,
  uplinkMaxBytes: 0,
  downlinkMaxAgeMs: 7 * 24 * 3600_000,
  pingIntervalMs: 2_000,
  duplicateWindowMs: 120_000
}
// When nothing wakes a waiting reader, it re-checks the stream this often (writes by other
// nodes arrive through the subscription too; this covers a reconnect gap).
const WAIT_POLL_MS = 250
// After a wake-up the message may not be stored yet (the subscription can see it first).
const WAIT_AFTER_WAKE_MS = 10

export async function openJetStreamStore (options: JetStreamStoreOptions): Promise<JetStreamCloudStore> {
  const log = options.logger ?? silentLogger()
  const names = storeNames(options.prefix ?? DEFAULTS.prefix)
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs
  const pingIntervalMs = options.pingIntervalMs ?? DEFAULTS.pingIntervalMs
  let nc: NatsConnection
  try {
    nc = await connect({
      servers: [...options.servers],
      name: 'tributary-cloud',
      timeout: requestTimeoutMs,
      maxReconnectAttempts: -1, // a cloud node outlives any one NATS server
      reconnectTimeWait: 250,
      pingInterval: pingIntervalMs,
      maxPingOut: 2
    })
  } catch (err) {
    throw tributaryError('TRIB_ERR_STORE_IO', `cannot connect to NATS at ${options.servers.join(',')}: ${(err as Error).message}`, { servers: options.servers }, err)
  }
  try {
    const jsm = await jetstreamManager(nc, { timeout: requestTimeoutMs })
    const js = jetstream(nc, { timeout: requestTimeoutMs })
    const layout = await ensureLayout(jsm, js, names, {
      replicas: options.replicas ?? (options.servers.length >= 3 ? 3 : 1),
      uplinkMaxAgeMs: options.uplinkMaxAgeMs ?? DEFAULTS.uplinkMaxAgeMs,
      uplinkMaxBytes: options.uplinkMaxBytes ?? DEFAULTS.uplinkMaxBytes,
      downlinkMaxAgeMs: options.downlinkMaxAgeMs ?? DEFAULTS.downlinkMaxAgeMs,
      duplicateWindowMs: options.duplicateWindowMs ?? DEFAULTS.duplicateWindowMs
    })
    const mirror = new OffsetMirror(layout.offsets, log)
    const uplink = new Uplink(js, jsm, names, mirror, {
      maxChunkBytes: options.maxChunkBytes ?? DEFAULTS.maxChunkBytes,
      retryBudgetMs: options.retryBudgetMs ?? DEFAULTS.retryBudgetMs,
      publishTimeoutMs: requestTimeoutMs
    }, log)
    const downlinks = new Downlinks(js, jsm, layout.counters, names, requestTimeoutMs)
    return new JetStreamCloudStore(nc, names, uplink, downlinks, new KvLeases(layout.leases), mirror, log, options.retryBudgetMs ?? DEFAULTS.retryBudgetMs)
  } catch (err) {
    await nc.close().catch(() => {})
    throw tributaryError('TRIB_ERR_STORE_IO', `cannot set up JetStream streams: ${(err as Error).message}`, { servers: options.servers }, err)
  }
}

export class JetStreamCloudStore implements CloudStore {
  readonly kind = 'jetstream'
  private readonly waiters: Array<() => void> = []
  private readonly appendTails = new Map<string, Promise<unknown>>()
  private readonly wakeSub: Subscription
  private closed = false

  constructor (
    private readonly nc: NatsConnection,
    readonly names: StoreNames,
    private readonly uplink: Uplink,
    private readonly downlinks: Downlinks,
    private readonly leases: KvLeases,
    private readonly mirror: OffsetMirror,
    private readonly log: Logger,
    private readonly retryBudgetMs: number
  ) {
    // Every chunk any node stores is also seen here as a plain NATS message: it wakes readers.
    this.wakeSub = nc.subscribe(`${names.uplinkPrefix}.*`, { callback: () => { this.wake() } })
  }

  // The lease check and the write of one call run inside the edge's ordered section: if the
  // check ran outside, a slow check (retried through a leader election) could let a later batch
  // of the same edge reach the uplink first and be written past a hole (seen in the fault test).
  async appendBatch (edgeId: string, batch: AppendBatchInput, lease: Lease): Promise<AppendOutcome> {
    const prev = this.appendTails.get(edgeId) ?? Promise.resolve()
    const run = prev.then(async () => await this.appendNow(edgeId, batch, lease), async () => await this.appendNow(edgeId, batch, lease))
    this.appendTails.set(edgeId, run)
    try {
      return await run
    } finally {
      if (this.appendTails.get(edgeId) === run) this.appendTails.delete(edgeId)
    }
  }

  private async appendNow (edgeId: string, batch: AppendBatchInput, lease: Lease): Promise<AppendOutcome> {
    const holder = await retrying('lease check', this.retryBudgetMs, async () => await this.leases.check(lease))
    if (holder !== undefined) return { status: 'fenced', holder }
    const out = await this.uplink.append(edgeId, batch)
    return { status: 'ok', committedOffset: out.committed, appended: out.appended }
  }

  async committedOffset (edgeId: string): Promise<number> {
    return await retrying('committed offset', this.retryBudgetMs, async () => await this.uplink.committed(edgeId))
  }

  async read (fromSeq: number, limits?: StoreReadLimits): Promise<StoreReadBatch> {
    return await retrying('read', this.retryBudgetMs, async () => await this.uplink.read(fromSeq, limits))
  }

  async readTopic (edgeId: string, topic: string, fromSeq: number, limits?: StoreReadLimits): Promise<StoreReadBatch> {
    return await retrying('read topic', this.retryBudgetMs, async () => await this.uplink.read(fromSeq, limits, edgeId, topic))
  }

  async waitForData (seq: number): Promise<void> {
    let pollMs = WAIT_POLL_MS
    while (!this.closed) {
      if (await this.endSeq() > seq) return
      const woke = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => { remove(); resolve(false) }, pollMs)
        const waiter = (): void => { clearTimeout(timer); resolve(true) }
        const remove = (): void => { const i = this.waiters.indexOf(waiter); if (i >= 0) this.waiters.splice(i, 1) }
        this.waiters.push(waiter)
      })
      pollMs = woke ? WAIT_AFTER_WAKE_MS : WAIT_POLL_MS
    }
  }

  private wake (): void {
    const ws = this.waiters.splice(0)
    for (const w of ws) w()
  }

  async seqForTime (timeMs: number): Promise<number> {
    return await retrying('seq for time', this.retryBudgetMs, async () => await this.uplink.seqForTime(timeMs))
  }

  async endSeq (): Promise<number> {
    return await retrying('end seq', this.retryBudgetMs, async () => await this.uplink.endSeq())
  }

  async getCursor (name: string): Promise<number | undefined> {
    return await retrying('get cursor', this.retryBudgetMs, async () => await this.downlinks.getCursor(name))
  }

  async setCursor (name: string, seq: number): Promise<void> {
    await retrying('set cursor', this.retryBudgetMs, async () => { await this.downlinks.setCursor(name, seq) })
  }

  async enqueueDownlink (edgeId: string, input: DownlinkInput): Promise<Downlink> {
    return await io('enqueue downlink', async () => await this.downlinks.enqueue(edgeId, input))
  }

  async pendingDownlinks (edgeId: string, afterSeq: number, nowMs: number, max: number): Promise<PendingDownlinks> {
    return await retrying('pending downlinks', this.retryBudgetMs, async () => await this.downlinks.pending(edgeId, afterSeq, nowMs, max))
  }

  async ackDownlinks (edgeId: string, upToSeq: number): Promise<void> {
    await retrying('ack downlinks', this.retryBudgetMs, async () => { await this.downlinks.ack(edgeId, upToSeq) })
  }

  async acquireLease (edgeId: string, holder: string, ttlMs: number, nowMs: number): Promise<LeaseOutcome> {
    return await retrying('acquire lease', this.retryBudgetMs, async () => await this.leases.acquire(edgeId, holder, ttlMs, nowMs))
  }

  async renewLease (lease: Lease, ttlMs: number, nowMs: number): Promise<LeaseOutcome> {
    return await retrying('renew lease', this.retryBudgetMs, async () => await this.leases.renew(lease, ttlMs, nowMs))
  }

  async releaseLease (lease: Lease): Promise<void> {
    await retrying('release lease', this.retryBudgetMs, async () => { await this.leases.release(lease) })
  }

  async stats (): Promise<StoreStats> {
    return await retrying('stats', this.retryBudgetMs, async () => {
      const totals = await this.uplink.totals()
      return { records: totals.records, bytes: totals.bytes, edges: totals.edges, pendingDownlinks: await this.downlinks.count(Date.now()) }
    })
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.wake()
    await this.mirror.flush().catch(() => {})
    this.wakeSub.unsubscribe()
    await this.nc.close().catch((err: Error) => { this.log.warn({ err: err.message }, 'closing NATS connection failed') })
  }
}

async function io<T> (what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (isTributaryError(err)) throw err
    throw tributaryError('TRIB_ERR_STORE_IO', `JetStream ${what} failed: ${(err as Error).message}`, undefined, err)
  }
}

// For operations that are safe to repeat (reads; compare-and-set writes): retried through a leader
// election, a lost server or "JetStream system temporarily unavailable", within the budget.
async function retrying<T> (what: string, budgetMs: number, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + budgetMs
  let delayMs = 100
  for (;;) {
    try {
      return await fn()
    } catch (err) {
      if (isTributaryError(err) || Date.now() + delayMs > deadline) return await io(what, async () => { throw err })
      await new Promise((resolve) => setTimeout(resolve, delayMs))
      delayMs = Math.min(delayMs * 2, 1_000)
    }
  }
}
