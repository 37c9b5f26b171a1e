// MetaStore on LevelDB (`level` 10 / classic-level): utf8 keys, Buffer values. Every failure of the
// database surfaces as TRIB_ERR_META_IO with the original error as `cause`.
// The directory is locked to one process (LevelDB's LOCK file): a second open fails.
import { Level } from 'level'
import { tributaryError } from '../errors/index.js'
import type { MetaOp, MetaStore, MetaWriteOptions } from './types.js'
import { checkBatch } from './ops.js'

type Db = Level<string, Buffer>

export interface LevelMetaStoreOptions {
  // LevelDB write buffer; the default (4 MiB) suits a small device. Bigger = fewer compactions.
  writeBufferBytes?: number
}

export class LevelMetaStore implements MetaStore {
  private constructor (private readonly db: Db, readonly path: string) {}

  static async open (path: string, opts: LevelMetaStoreOptions = {}): Promise<LevelMetaStore> {
    const db: Db = new Level<string, Buffer>(path, {
      keyEncoding: 'utf8',
      valueEncoding: 'buffer',
      ...(opts.writeBufferBytes === undefined ? {} : { writeBufferSize: opts.writeBufferBytes })
    })
    try {
      await db.open()
    } catch (err) {
      throw wrap(err, `cannot open metadata store at ${path}`)
    }
    return new LevelMetaStore(db, path)
  }

  async get (key: string): Promise<Buffer | undefined> {
    try {
      const value = await this.db.get(key)
      return value ?? undefined
    } catch (err) {
      throw wrap(err, `metadata get ${key} failed`)
    }
  }

  async put (key: string, value: Buffer, opts?: MetaWriteOptions): Promise<void> {
    await this.batch([{ type: 'put', key, value }], opts)
  }

  async del (key: string, opts?: MetaWriteOptions): Promise<void> {
    await this.batch([{ type: 'del', key }], opts)
  }

  async batch (ops: readonly MetaOp[], opts?: MetaWriteOptions): Promise<void> {
    checkBatch(ops)
    if (ops.length === 0) return
    try {
      await this.db.batch(ops as MetaOp[], { sync: opts?.sync === true })
    } catch (err) {
      throw wrap(err, `metadata batch of ${ops.length} ops failed`)
    }
  }

  async * scan (prefix: string): AsyncIterable<[string, Buffer]> {
    // Start at the prefix and stop at the first key without it: exact for any prefix, with no
    // need for an upper bound string (a '\uffff' bound would miss keys with astral characters).
    let iterator
    try {
      iterator = this.db.iterator({ gte: prefix })
    } catch (err) {
      throw wrap(err, `metadata scan ${prefix} failed`)
    }
    try {
      while (true) {
        let entry: [string, Buffer] | undefined
        try {
          entry = await iterator.next()
        } catch (err) {
          throw wrap(err, `metadata scan ${prefix} failed`)
        }
        if (entry === undefined || !entry[0].startsWith(prefix)) return
        yield entry
      }
    } finally {
      await iterator.close().catch(() => {})
    }
  }

  async close (): Promise<void> {
    try {
      await this.db.close()
    } catch (err) {
      throw wrap(err, 'closing the metadata store failed')
    }
  }
}

function wrap (err: unknown, message: string): Error {
  const reason = err instanceof Error ? err.message : String(err)
  return tributaryError('TRIB_ERR_META_IO', `${message}: ${reason}`, undefined, err)
}
