// In-memory MetaStore: the reference implementation for tests. It behaves like the LevelDB one
// where a caller could tell the difference: keys are ordered by their UTF-8 bytes (LevelDB's
// order, not JavaScript's UTF-16 order), values are copied in and out (no aliasing), a batch is
// validated before any of it is applied (atomic), and everything fails after close().
import { tributaryError } from '../errors/index.js'
import type { MetaOp, MetaStore, MetaWriteOptions } from './types.js'
import { checkBatch, scanMap } from './ops.js'

export class MemoryMetaStore implements MetaStore {
  private readonly data = new Map<string, Buffer>()
  private closed = false

  async get (key: string): Promise<Buffer | undefined> {
    this.assertOpen()
    const value = this.data.get(key)
    return value === undefined ? undefined : Buffer.from(value)
  }

  async put (key: string, value: Buffer, _opts?: MetaWriteOptions): Promise<void> {
    await this.batch([{ type: 'put', key, value }])
  }

  async del (key: string, _opts?: MetaWriteOptions): Promise<void> {
    await this.batch([{ type: 'del', key }])
  }

  async batch (ops: readonly MetaOp[], _opts?: MetaWriteOptions): Promise<void> {
    this.assertOpen()
    checkBatch(ops)
    for (const op of ops) {
      if (op.type === 'put') this.data.set(op.key, Buffer.from(op.value))
      else this.data.delete(op.key)
    }
  }

  async * scan (prefix: string): AsyncIterable<[string, Buffer]> {
    this.assertOpen()
    yield * scanMap(this.data, prefix)
  }

  async close (): Promise<void> {
    this.closed = true
  }

  private assertOpen (): void {
    if (this.closed) throw tributaryError('TRIB_ERR_META_IO', 'metadata store is closed')
  }
}
