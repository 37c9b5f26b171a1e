// Helpers shared by the MetaStore implementations.
import { tributaryError } from '../errors/index.js'
import type { MetaOp } from './types.js'

// Rejects a malformed batch before anything is written, so a batch is all-or-nothing in every
// implementation (LevelDB's own check would also reject it, but with its own error type).
export function checkBatch (ops: readonly MetaOp[]): void {
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]
    if (typeof op !== 'object' || op === null || typeof op.key !== 'string' || op.key.length === 0) {
      throw tributaryError('TRIB_ERR_META_IO', `metadata batch op ${i}: key must be a non-empty string`)
    }
    if (op.type === 'put') {
      if (!Buffer.isBuffer(op.value)) throw tributaryError('TRIB_ERR_META_IO', `metadata batch op ${i} (${op.key}): value must be a Buffer`)
    } else if (op.type !== 'del') {
      throw tributaryError('TRIB_ERR_META_IO', `metadata batch op ${i}: unknown type ${String((op as { type: unknown }).type)}`)
    }
  }
}

// LevelDB orders keys by their bytes; for utf8 keys that is code point order, which differs from
// JavaScript's UTF-16 string order for characters above U+FFFF versus U+E000..U+FFFF.
export function compareUtf8 (a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

// Prefix scan over an in-memory map, in LevelDB's key order (UTF-8 bytes), with copied values.
// A key deleted while the scan is paused is skipped (a LevelDB snapshot would still return it:
// callers must not rely on either; the contract promises only order).
export function * scanMap (data: ReadonlyMap<string, Uint8Array>, prefix: string): Generator<[string, Buffer]> {
  const keys: string[] = []
  for (const key of data.keys()) if (key.startsWith(prefix)) keys.push(key)
  keys.sort(compareUtf8)
  for (const key of keys) {
    const value = data.get(key)
    if (value !== undefined) yield [key, Buffer.from(value)]
  }
}
