// Session records in a JetStream KV bucket shared by every cloud node (replicated like the
// store). Keys `s.<clientToken>`; history 1; the bucket's TTL is the session expiry: a record
// not rewritten for that long (its holder renews it while the client is connected) is removed
// by the server, which bounds abandoned sessions without any sweep.
// Release requests are NATS requests to the holding process's own subject
// (<prefix>.csess.release.<holder token>): a live holder hands over (final cursor written) and
// answers; a dead one has no subscriber, so the request fails at once ("no responders") and the
// new node takes the session without waiting for a lease to run out.
import type { NatsConnection, Subscription } from '@nats-io/transport-node'
import type { KV } from '@nats-io/kv'
import { tributaryError } from '../../src/errors/index.js'
import type { Logger } from '../../src/log/index.js'
import { openKvBucket } from '../../src/meta/kv-bucket.js'
import { isCasConflict } from '../store/jetstream/kv-util.js'
import type { PutOutcome, SessionKV } from './kv.js'
import { clientToken, decodeSession, encodeSession, type SessionRecord, type VersionedSession } from './record.js'

export interface JetStreamSessionKVOptions {
  servers: readonly string[]
  bucket: string
  // Subject prefix of release requests ([A-Za-z0-9_-]).
  prefix: string
  replicas?: number
  expiryMs: number
  requestTimeoutMs?: number
  logger: Logger
}

// A live holder answers within milliseconds; this only bounds a holder that is alive but stuck.
const RELEASE_TIMEOUT_MS = 2_000
// Transient JetStream errors (a bucket leader being elected, a server restarting) are retried
// for this long; a CONNECT waits for it, so it stays short.
const RETRY_BUDGET_MS = 2_000

async function retrying<T> (fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + RETRY_BUDGET_MS
  for (let delayMs = 50; ; delayMs = Math.min(delayMs * 2, 500)) {
    try {
      return await fn()
    } catch (err) {
      if (isCasConflict(err) || Date.now() + delayMs > deadline) throw err
      await new Promise((resolve) => setTimeout(resolve, delayMs))
    }
  }
}

// Holder -> subject token: holders look like <node id>#<random hex>; the hex part is unique.
function holderToken (holder: string): string {
  const t = holder.slice(holder.lastIndexOf('#') + 1)
  return /^[A-Za-z0-9_-]{1,64}$/.test(t) ? t : Buffer.from(holder).toString('hex').slice(0, 64)
}

export class JetStreamSessionKV implements SessionKV {
  private sub: Subscription | undefined

  private constructor (private readonly nc: NatsConnection, private readonly kv: KV, private readonly subject: string, private readonly logger: Logger) {}

  static async open (o: JetStreamSessionKVOptions): Promise<JetStreamSessionKV> {
    const { nc, kv } = await openKvBucket({ servers: o.servers, clientName: 'tributary-sessions', bucket: o.bucket, replicas: o.replicas, ttlMs: o.expiryMs, timeoutMs: o.requestTimeoutMs ?? 5_000 })
    return new JetStreamSessionKV(nc, kv, `${o.prefix}.csess.release`, o.logger)
  }

  async get (clientId: string): Promise<VersionedSession | undefined> {
    const key = `s.${clientToken(clientId)}`
    let e
    try {
      e = await retrying(async () => await this.kv.get(key))
    } catch (err) {
      throw tributaryError('TRIB_ERR_META_IO', `reading session of ${clientId} failed: ${(err as Error).message}`, undefined, err)
    }
    if (e === null || e.operation !== 'PUT') return undefined
    return { record: decodeSession(e.value), revision: e.revision }
  }

  async put (clientId: string, record: SessionRecord, expectedRevision: number): Promise<PutOutcome> {
    const key = `s.${clientToken(clientId)}`
    try {
      const value = encodeSession(record)
      const revision = await retrying(async () => expectedRevision === 0 ? await this.kv.create(key, value) : await this.kv.update(key, value, expectedRevision))
      return { status: 'ok', revision }
    } catch (err) {
      if (isCasConflict(err)) return { status: 'conflict' }
      throw tributaryError('TRIB_ERR_META_IO', `writing session of ${clientId} failed: ${(err as Error).message}`, undefined, err)
    }
  }

  async delete (clientId: string): Promise<void> {
    const key = `s.${clientToken(clientId)}`
    try {
      await retrying(async () => { await this.kv.delete(key) })
    } catch (err) {
      throw tributaryError('TRIB_ERR_META_IO', `removing session of ${clientId} failed: ${(err as Error).message}`, undefined, err)
    }
  }

  async requestRelease (clientId: string, holder: string): Promise<boolean> {
    try {
      await this.nc.request(`${this.subject}.${holderToken(holder)}`, clientId, { timeout: RELEASE_TIMEOUT_MS })
      return true
    } catch {
      return false // no responders (the holder is gone) or a timeout
    }
  }

  onReleaseRequest (holder: string, handler: (clientId: string) => Promise<void>): void {
    this.sub = this.nc.subscribe(`${this.subject}.${holderToken(holder)}`, {
      callback: (err, msg) => {
        if (err !== null) return
        handler(msg.string()).catch((e: Error) => { this.logger.warn({ err: e }, 'handing a session over failed') }).finally(() => { msg.respond() })
      }
    })
  }

  async close (): Promise<void> {
    this.sub?.unsubscribe()
    await this.nc.drain().catch(async () => { await this.nc.close() })
  }
}
