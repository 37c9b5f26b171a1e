// What the persistence adapter needs of the commitlog (src/commitlog's CommitLog satisfies it).
import type { ReadBatch, ReadLimits } from '../../commitlog/types.js'

export interface SessionLog {
  readonly endOffset: number
  read: (offset: number, limits?: ReadLimits) => ReadBatch
  // Retention keeps records from `offset` on for this reader (unless the disk cap forces).
  setReader: (name: string, offset: number) => void
  removeReader: (name: string) => void
}

export function readerName (clientId: string): string { return 'session:' + clientId }
