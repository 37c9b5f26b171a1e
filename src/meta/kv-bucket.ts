// Connects to a NATS cluster and opens (creating if needed) a replicated JetStream KV bucket
// with history 1: the common start of every KV-backed store (metadata, cloud sessions).
import { connect, type NatsConnection } from '@nats-io/transport-node'
import { jetstream } from '@nats-io/jetstream'
import { Kvm, type KV } from '@nats-io/kv'
import { tributaryError } from '../errors/index.js'

export interface KvBucketOptions {
  servers: readonly string[]
  clientName: string
  bucket: string
  // Default: 3 with 3+ servers, else 1.
  replicas?: number
  // Entries not rewritten for this long are removed by the server (0/undefined: never).
  ttlMs?: number
  timeoutMs: number
}

export async function openKvBucket (o: KvBucketOptions): Promise<{ nc: NatsConnection, kv: KV }> {
  let nc: NatsConnection
  try {
    nc = await connect({ servers: [...o.servers], name: o.clientName, timeout: o.timeoutMs, maxReconnectAttempts: -1, reconnectTimeWait: 250, pingInterval: 2_000, maxPingOut: 2 })
  } catch (err) {
    throw tributaryError('TRIB_ERR_META_IO', `cannot connect to NATS at ${o.servers.join(',')}: ${(err as Error).message}`, undefined, err)
  }
  try {
    const opts = { replicas: o.replicas ?? (o.servers.length >= 3 ? 3 : 1), history: 1, allow_direct: false, ...(o.ttlMs !== undefined && o.ttlMs > 0 ? { ttl: o.ttlMs } : {}) }
    const kv = await new Kvm(jetstream(nc, { timeout: o.timeoutMs })).create(o.bucket, opts)
    return { nc, kv }
  } catch (err) {
    await nc.close().catch(() => {})
    throw tributaryError('TRIB_ERR_META_IO', `cannot open KV bucket ${o.bucket}: ${(err as Error).message}`, undefined, err)
  }
}
