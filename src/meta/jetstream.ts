// A MetaStore in a replicated NATS JetStream key-value bucket, so the metadata of a cloud node
// (persistent MQTT sessions of cloud subscribers) lives in the cluster, not on the node's disk.
//
// Layout: one bucket (history 1, R3 in a cluster) shared by every node; each store instance owns
// a namespace `<ns>` in it (e.g. one per cloud node id):
//   <ns>.d.<token>   a value; <token> = encodeToken(key) (bijective, any UTF-8 key)
//   <ns>.t.<txid>    an open batch (intent), see batch()
//   <ns>.lock        {owner, expiresAtMs}: one process per namespace, as LevelDB locks its dir
//
// Single writer per namespace (the lock), so the namespace is loaded into memory at open and
// reads (get, scan) are answered from that copy; every write goes to the bucket first and is
// applied to the copy once the bucket acked it (a quorum has it).
//
// Atomic batches: KV has no multi-key transaction in nats-server 2.9. A batch of more than one op
// is first written whole as one intent value, then applied key by key, then the intent is
// removed. A crash in between leaves the intent, and the next open re-applies it before anything
// reads: all or nothing, as seen by any later open. Batches too large for one intent value
// (MAX_INTENT_BYTES) are applied without the intent (not crash-atomic; logged).
import { randomBytes } from 'node:crypto'
import type { NatsConnection } from '@nats-io/transport-node'
import type { KV } from '@nats-io/kv'
import { isTributaryError, tributaryError } from '../errors/index.js'
import type { Logger } from '../log/index.js'
import { silentLogger } from '../log/index.js'
import { checkBatch, scanMap } from './ops.js'
import { openKvBucket } from './kv-bucket.js'
import type { MetaOp, MetaStore, MetaWriteOptions } from './types.js'

export interface JetStreamMetaStoreOptions {
  servers: readonly string[]
  bucket: string
  // Names this store's keys in the bucket; [A-Za-z0-9_-], at most 64.
  namespace: string
  replicas?: number
  // Another process holding the namespace blocks open() until its lock expires (it crashed) or it
  // closes. The lock is renewed at a third of this.
  lockTtlMs?: number
  requestTimeoutMs?: number
  logger?: Logger
}

// One KV value must fit a NATS message (1 MiB max_payload by default) with headers.
const MAX_INTENT_BYTES = 768 * 1024
const DEFAULT_LOCK_TTL_MS = 15_000
const NAMESPACE_PATTERN = /^[A-Za-z0-9_-]{1,64}$/
const SAFE = /^[A-Za-z0-9_-]$/

// Key -> KV key token: [A-Za-z0-9_-] as is, every other UTF-8 byte as =HH, '' as '='. Bijective
// and prefix-preserving on bytes, so any MetaStore key (NUL separators, astral characters) fits.
export function encodeKey (key: string): string {
  if (key.length === 0) return '='
  let out = ''
  for (const b of Buffer.from(key, 'utf8')) {
    const c = String.fromCharCode(b)
    out += SAFE.test(c) ? c : '=' + b.toString(16).toUpperCase().padStart(2, '0')
  }
  return out
}

export function decodeKey (token: string): string {
  if (token === '=') return ''
  const bytes: number[] = []
  for (let i = 0; i < token.length; i++) {
    if (token[i] === '=') { bytes.push(parseInt(token.slice(i + 1, i + 3), 16)); i += 2 } else bytes.push(token.charCodeAt(i))
  }
  return Buffer.from(bytes).toString('utf8')
}

interface IntentOp { t: 'p' | 'd', k: string, v?: string }

export class JetStreamMetaStore implements MetaStore {
  private readonly data = new Map<string, Buffer>()
  private closed = false
  private lockTimer: NodeJS.Timeout | undefined
  private lockRevision = 0
  // Writes are applied in call order (a batch after a put to the same key must win).
  private tail: Promise<void> = Promise.resolve()

  private constructor (
    private readonly nc: NatsConnection,
    private readonly kv: KV,
    private readonly ns: string,
    private readonly owner: string,
    private readonly lockTtlMs: number,
    private readonly logger: Logger
  ) {}

  static async open (opts: JetStreamMetaStoreOptions): Promise<JetStreamMetaStore> {
    if (!NAMESPACE_PATTERN.test(opts.namespace)) throw tributaryError('TRIB_ERR_META_IO', `metadata namespace "${opts.namespace}" must be 1 to 64 letters, digits, _ or -`)
    const { nc, kv } = await openKvBucket({ servers: opts.servers, clientName: 'tributary-meta', bucket: opts.bucket, replicas: opts.replicas, timeoutMs: opts.requestTimeoutMs ?? 5_000 })
    try {
      const store = new JetStreamMetaStore(nc, kv, opts.namespace, `${process.pid}-${randomBytes(6).toString('hex')}`, opts.lockTtlMs ?? DEFAULT_LOCK_TTL_MS, opts.logger ?? silentLogger())
      await store.lock()
      await store.load()
      return store
    } catch (err) {
      await nc.close().catch(() => {})
      if (isTributaryError(err)) throw err
      throw tributaryError('TRIB_ERR_META_IO', `cannot open metadata bucket ${opts.bucket}: ${(err as Error).message}`, undefined, err)
    }
  }

  // ------------------------------------------------------------------ lock

  private async lock (): Promise<void> {
    const key = `${this.ns}.lock`
    const entry = await this.kv.get(key)
    const cur = entry !== null && entry.operation === 'PUT' ? JSON.parse(Buffer.from(entry.value).toString()) as { owner: string, expiresAtMs: number } : undefined
    if (cur !== undefined && cur.expiresAtMs > Date.now()) {
      throw tributaryError('TRIB_ERR_META_IO', `metadata namespace "${this.ns}" is held by another process (${cur.owner}) until ${new Date(cur.expiresAtMs).toISOString()}`)
    }
    const value = this.lockValue()
    try {
      this.lockRevision = entry === null ? await this.kv.create(key, value) : await this.kv.update(key, value, entry.revision)
    } catch (err) {
      throw tributaryError('TRIB_ERR_META_IO', `metadata namespace "${this.ns}" was taken by another process while opening`, undefined, err)
    }
    this.lockTimer = setInterval(() => { this.renewLock() }, Math.max(100, Math.floor(this.lockTtlMs / 3)))
    this.lockTimer.unref()
  }

  private lockValue (): Uint8Array {
    return Buffer.from(JSON.stringify({ owner: this.owner, expiresAtMs: Date.now() + this.lockTtlMs }))
  }

  private renewLock (): void {
    this.kv.update(`${this.ns}.lock`, this.lockValue(), this.lockRevision).then((rev) => { this.lockRevision = rev }, (err: Error) => {
      // Lost to another process (it saw our lock expire) or the cluster is unreachable: the
      // writes we still make may race the new owner. Logged; the owner decides (here: keep trying).
      this.logger.error({ code: 'TRIB_ERR_META_IO', err: err.message, namespace: this.ns }, 'renewing the metadata lock failed')
    })
  }

  // ------------------------------------------------------------------ load + recovery

  private async load (): Promise<void> {
    const intents: Array<{ key: string, ops: IntentOp[] }> = []
    const iter = await this.kv.history({ key: `${this.ns}.>` })
    for await (const e of iter) {
      const key = e.key
      const live = e.operation === 'PUT'
      if (key.startsWith(`${this.ns}.d.`)) {
        const k = decodeKey(key.slice(this.ns.length + 3))
        if (live) this.data.set(k, Buffer.from(e.value)); else this.data.delete(k)
      } else if (key.startsWith(`${this.ns}.t.`)) {
        const i = intents.findIndex((x) => x.key === key)
        if (i >= 0) intents.splice(i, 1)
        if (live) intents.push({ key, ops: JSON.parse(Buffer.from(e.value).toString()) as IntentOp[] })
      }
    }
    // A batch interrupted by a crash: finish it before anyone reads.
    for (const intent of intents) {
      this.logger.warn({ namespace: this.ns, ops: intent.ops.length }, 'completing a metadata batch interrupted by a crash')
      await this.applyOps(intent.ops.map((o): MetaOp => o.t === 'p' ? { type: 'put', key: o.k, value: Buffer.from(o.v ?? '', 'base64') } : { type: 'del', key: o.k }))
      await this.kv.purge(intent.key)
    }
  }

  // ------------------------------------------------------------------ MetaStore

  async get (key: string): Promise<Buffer | undefined> {
    this.assertOpen()
    await this.tail
    const v = this.data.get(key)
    return v === undefined ? undefined : Buffer.from(v)
  }

  async put (key: string, value: Buffer, opts?: MetaWriteOptions): Promise<void> {
    await this.batch([{ type: 'put', key, value }], opts)
  }

  async del (key: string, opts?: MetaWriteOptions): Promise<void> {
    await this.batch([{ type: 'del', key }], opts)
  }

  // `sync` needs nothing extra: a KV write resolves when a quorum of servers stored it.
  async batch (ops: readonly MetaOp[], _opts?: MetaWriteOptions): Promise<void> {
    this.assertOpen()
    checkBatch(ops)
    const copy = ops.map((op): MetaOp => op.type === 'put' ? { type: 'put', key: op.key, value: Buffer.from(op.value) } : { type: 'del', key: op.key })
    const run = this.tail.then(async () => { await this.writeBatch(copy) })
    this.tail = run.catch(() => {})
    try {
      await run
    } catch (err) {
      if (isTributaryError(err)) throw err
      throw tributaryError('TRIB_ERR_META_IO', `metadata write failed: ${(err as Error).message}`, undefined, err)
    }
  }

  private async writeBatch (ops: MetaOp[]): Promise<void> {
    if (ops.length <= 1) { await this.applyOps(ops); return }
    const intent: IntentOp[] = ops.map((o) => o.type === 'put' ? { t: 'p', k: o.key, v: o.value.toString('base64') } : { t: 'd', k: o.key })
    const body = Buffer.from(JSON.stringify(intent))
    if (body.length > MAX_INTENT_BYTES) {
      this.logger.warn({ namespace: this.ns, ops: ops.length, bytes: body.length }, 'metadata batch too large for one intent: applied without crash atomicity')
      await this.applyOps(ops)
      return
    }
    const key = `${this.ns}.t.${randomBytes(8).toString('hex')}`
    await this.kv.put(key, body)
    await this.applyOps(ops)
    await this.kv.purge(key)
  }

  // Publishes on one connection reach the stream leader in order, so pipelining keeps op order.
  private async applyOps (ops: readonly MetaOp[]): Promise<void> {
    await Promise.all(ops.map(async (op) => {
      const k = `${this.ns}.d.${encodeKey(op.key)}`
      if (op.type === 'put') await this.kv.put(k, op.value)
      else await this.kv.delete(k)
    }))
    for (const op of ops) {
      if (op.type === 'put') this.data.set(op.key, op.value)
      else this.data.delete(op.key)
    }
  }

  async * scan (prefix: string): AsyncIterable<[string, Buffer]> {
    this.assertOpen()
    await this.tail
    yield * scanMap(this.data, prefix)
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.lockTimer !== undefined) clearInterval(this.lockTimer)
    await this.tail
    // Release the lock so the next open (this node restarted) need not wait for it to expire.
    await this.kv.update(`${this.ns}.lock`, Buffer.from(JSON.stringify({ owner: this.owner, expiresAtMs: 0 })), this.lockRevision).catch(() => {})
    await this.nc.close().catch(() => {})
  }

  private assertOpen (): void {
    if (this.closed) throw tributaryError('TRIB_ERR_META_IO', 'metadata store is closed')
  }
}

