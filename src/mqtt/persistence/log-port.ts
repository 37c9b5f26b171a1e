// What the persistence adapter needs of the commitlog (src/commitlog's CommitLog satisfies it).
import type { ReadBatch, ReadLimits } from '../../commitlog/types.js'

export interface SessionLog {
  readonly endOffset: number
  // End of what the log has acknowledged (CommitLog.ackedOffset): what a crash cannot take back.
  // Records past it are already routed to online subscribers (route before durable, broker.ts)
  // but may be lost and their offsets reused, so no cursor is persisted beyond it.
  readonly ackedOffset: number
  read: (offset: number, limits?: ReadLimits) => ReadBatch
  // Makes everything appended so far durable (CommitLog.flush). destroy() calls it first, so
  // that a graceful shutdown persists cursors all the way (not held back by the acked offset).
  flush?: () => Promise<void>
  // Retention keeps records from `offset` on for this reader (unless the disk cap forces).
  setReader: (name: string, offset: number) => void
  removeReader: (name: string) => void
}

export function readerName (clientId: string): string { return 'session:' + clientId }
