// Metadata store contract: sessions, subscriptions, retained messages, consumer offsets, bridge
// checkpoints. Small keyed values, not the message stream (that is the commitlog).
// Implementations: LevelDB (`level`) for real use, memory for tests; one contract suite runs
// against both (test/contract/meta-store.test.ts).

export type MetaOp =
  | { type: 'put', key: string, value: Buffer }
  | { type: 'del', key: string }

export interface MetaWriteOptions {
  // fsync before resolving. Use for what must survive a power cut once acknowledged
  // (e.g. a bridge checkpoint is NOT such a thing: it may lag, replay is idempotent).
  sync?: boolean
}

export interface MetaStore {
  get (key: string): Promise<Buffer | undefined>
  put (key: string, value: Buffer, opts?: MetaWriteOptions): Promise<void>
  del (key: string, opts?: MetaWriteOptions): Promise<void>
  // Atomic: all or nothing.
  batch (ops: readonly MetaOp[], opts?: MetaWriteOptions): Promise<void>
  // Keys starting with `prefix`, in key order.
  scan (prefix: string): AsyncIterable<[string, Buffer]>
  close (): Promise<void>
}
