// Where session records live: a compare-and-set key-value port with two implementations,
// a JetStream KV bucket shared by every node (kv-jetstream.ts) and the node's MetaStore
// (LevelDB, embedded store: one node) here.
import type { Logger } from '../../src/log/index.js'
import type { MetaStore } from '../../src/meta/types.js'
import { clientToken, decodeSession, encodeSession, isExpired, tokenClient, type SessionRecord, type VersionedSession } from './record.js'

export type PutOutcome = { status: 'ok', revision: number } | { status: 'conflict' }

export interface SessionKV {
  get: (clientId: string) => Promise<VersionedSession | undefined>
  // expectedRevision 0: the session must not exist.
  put: (clientId: string, record: SessionRecord, expectedRevision: number) => Promise<PutOutcome>
  delete: (clientId: string) => Promise<void>
  // Asks the node process `holder` to hand the session over: write its final cursor, give the
  // session up and disconnect the client. Resolves true when it answered, false when nobody
  // answered (that process is gone) or it took too long: then the caller takes the session
  // anyway, and the compare-and-set fences the old holder out.
  requestRelease: (clientId: string, holder: string) => Promise<boolean>
  // This process (`holder`) answers release requests with `handler`.
  onReleaseRequest: (holder: string, handler: (clientId: string) => Promise<void>) => void
  close: () => Promise<void>
}

const PREFIX = 'csess/'

// MetaStore-backed: one process owns the MetaStore (LevelDB locks its directory), so a promise
// chain makes check-and-write atomic. Value: 8-byte revision (float64 LE) + record.
export class MetaSessionKV implements SessionKV {
  private tail: Promise<unknown> = Promise.resolve()
  private sweeper: NodeJS.Timeout | undefined
  private readonly handlers = new Map<string, (clientId: string) => Promise<void>>()

  constructor (private readonly meta: MetaStore, private readonly logger: Logger) {}

  private serial<T> (fn: () => Promise<T>): Promise<T> {
    const p = this.tail.then(fn, fn)
    this.tail = p.catch(() => {})
    return p
  }

  private async read (clientId: string): Promise<VersionedSession | undefined> {
    const b = await this.meta.get(PREFIX + clientToken(clientId))
    if (b === undefined) return undefined
    return { revision: b.readDoubleLE(0), record: decodeSession(b.subarray(8)) }
  }

  async get (clientId: string): Promise<VersionedSession | undefined> {
    return await this.serial(async () => await this.read(clientId))
  }

  async put (clientId: string, record: SessionRecord, expectedRevision: number): Promise<PutOutcome> {
    return await this.serial(async () => {
      const cur = await this.read(clientId)
      if ((cur?.revision ?? 0) !== expectedRevision) return { status: 'conflict' as const }
      const revision = expectedRevision + 1
      const head = Buffer.alloc(8)
      head.writeDoubleLE(revision, 0)
      await this.meta.put(PREFIX + clientToken(clientId), Buffer.concat([head, encodeSession(record)]))
      return { status: 'ok' as const, revision }
    })
  }

  async delete (clientId: string): Promise<void> {
    await this.serial(async () => { await this.meta.del(PREFIX + clientToken(clientId)) })
  }

  // One node: a holder is this process or an earlier one (gone).
  async requestRelease (clientId: string, holder: string): Promise<boolean> {
    const handler = this.handlers.get(holder)
    if (handler === undefined) return false
    await handler(clientId)
    return true
  }

  onReleaseRequest (holder: string, handler: (clientId: string) => Promise<void>): void {
    this.handlers.set(holder, handler)
  }

  // Removes sessions offline longer than expiryMs now and every sweepMs (the JetStream bucket
  // does this itself with its TTL).
  startExpiry (expiryMs: number, sweepMs: number, now: () => number): void {
    const sweep = (): void => {
      void this.sweep(expiryMs, now()).catch((err: Error) => { this.logger.warn({ err }, 'session expiry sweep failed') })
    }
    sweep()
    this.sweeper = setInterval(sweep, sweepMs)
    this.sweeper.unref()
  }

  async sweep (expiryMs: number, nowMs: number): Promise<number> {
    const expired: string[] = []
    for await (const [key, value] of this.meta.scan(PREFIX)) {
      if (isExpired(decodeSession(value.subarray(8)), nowMs, expiryMs)) expired.push(tokenClient(key.slice(PREFIX.length)))
    }
    let removed = 0
    for (const clientId of expired) {
      // Checked again inside the chain: the client may have come back since the scan.
      await this.serial(async () => {
        const cur = await this.read(clientId)
        if (cur !== undefined && isExpired(cur.record, nowMs, expiryMs)) { await this.meta.del(PREFIX + clientToken(clientId)); removed++ }
      })
    }
    if (removed > 0) this.logger.info({ removed, expiryMs }, 'expired persistent sessions removed')
    return removed
  }

  async close (): Promise<void> {
    if (this.sweeper !== undefined) clearInterval(this.sweeper)
    await this.tail
  }
}
