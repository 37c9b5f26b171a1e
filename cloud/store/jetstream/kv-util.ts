// Small helpers around @nats-io/kv for compare-and-set loops.
import type { KV, KvEntry } from '@nats-io/kv'

// A compare-and-set lost its race: JetStream "wrong last sequence" (10071), or create() found the
// key present.
export function isCasConflict (err: unknown): boolean {
  const code = (err as { code?: number }).code
  if (code === 10071 || code === 10164) return true
  return /wrong last sequence|key exists/i.test((err as Error).message ?? '')
}

// A key's entry (null when it never existed). A deleted key has an entry with operation DEL.
export async function getEntry (kv: KV, key: string): Promise<KvEntry | null> {
  return await kv.get(key)
}

export function liveValue (e: KvEntry | null): Uint8Array | undefined {
  return e !== null && e.operation === 'PUT' ? e.value : undefined
}

// Writes `value` if the key is still at `entry`'s revision (or still absent when `entry` is
// null). Returns false when another writer got there first.
export async function casWrite (kv: KV, key: string, value: Uint8Array, entry: KvEntry | null): Promise<boolean> {
  try {
    if (entry === null) await kv.create(key, value)
    else await kv.update(key, value, entry.revision)
    return true
  } catch (err) {
    if (isCasConflict(err)) return false
    throw err
  }
}

// Bounded: a key contended by more writers than this at once is a bug, not a load pattern.
export const MAX_CAS_ATTEMPTS = 16
