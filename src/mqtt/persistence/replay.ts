// outgoingStream for a log-backed session: the queued copies, then the log from the session's
// cursor up to what had been enqueued when the stream was opened (later messages reach a
// connected client live; reading them here too would send them twice).
import type { Logger } from '../../log/index.js'
import type { LogRecord } from '../../commitlog/types.js'
import { rememberLogPosition } from '../record-offsets.js'
import type { SessionLog } from './log-port.js'
import { NO_ID, QueuedPacket, type CopyEntry, type Session } from './session.js'

// Records per log read. Bounds the memory of one read; the stream holds at most this many plus
// its high-water mark of packets.
const REPLAY_READ_RECORDS = 512
const REPLAY_READ_BYTES = 1 << 20

export interface ReplayContext {
  log: SessionLog
  logger: Logger
  brokerId: () => string
  onCursorMoved: (session: Session) => void
}

export class PubrelPacket {
  readonly cmd = 'pubrel'
  constructor (readonly messageId: number) {}
}

export async function * replaySession (ctx: ReplayContext, session: Session, connection: object, token: object, copies: CopyEntry[], start: number, end: number): AsyncGenerator<object> {
  for (const copy of copies) yield copy.packet
  let pos = start
  let truncatedWarned = false
  try {
    while (pos < end && session.replayToken === token) {
      const batch = ctx.log.read(pos, { maxRecords: REPLAY_READ_RECORDS, maxBytes: REPLAY_READ_BYTES, maxOffset: end })
      if (batch.status === 'end') break
      if (batch.status === 'truncated') {
        // Retention deleted records this session had not received (only when the disk cap forced
        // it; the log counts and logs the drop). Continue from the oldest record left.
        if (!truncatedWarned) {
          ctx.logger.warn({ clientId: session.clientId, from: pos, to: batch.nextOffset }, 'persistent session lost queued messages to log retention')
          truncatedWarned = true
        }
        session.forgetBelow(batch.nextOffset)
        pos = batch.nextOffset
        continue
      }
      const records = batch.records
      for (let i = 0; i < records.length; i++) {
        const record = records[i]
        if (record.offset >= end) { pos = end; break }
        const packet = packetFor(ctx, session, record, connection)
        if (session.replayToken !== token) return
        session.replayFloor = record.nextOffset
        pos = record.nextOffset
        if (packet !== null) yield packet
        if (session.replayToken !== token) return
      }
      if (batch.nextOffset > pos) pos = batch.nextOffset
    }
  } finally {
    if (session.replayToken === token) {
      session.replayToken = null
      session.replayFloor = Infinity
      // Stopped early (client gone): what was not read is still pending.
      if (pos < end && pos < session.untrackedMin) session.untrackedMin = pos
      if (session.recompute()) ctx.onCursorMoved(session)
    }
  }
}

function packetFor (ctx: ReplayContext, session: Session, record: LogRecord, connection: object): object | null {
  let entry = session.entries.get(record.offset)
  if (entry !== undefined) {
    if (entry.acked || entry.deliveredTo === connection) return null
    // Sent on an earlier connection and not acknowledged: send again with the same packet
    // identifier, as a PUBREL if the PUBLISH was already PUBREC'd [MQTT-4.4.0-1].
    if (entry.pubrel && entry.messageId !== NO_ID) return new PubrelPacket(entry.messageId)
  } else {
    const qos = session.matchQos(record)
    if (qos === 0) return null
    entry = session.track(record, qos)
  }
  rememberLogPosition(record.payload, record)
  const packet = new QueuedPacket({
    cmd: 'publish',
    brokerId: ctx.brokerId(),
    brokerCounter: 0,
    topic: record.topic,
    payload: record.payload,
    qos: entry.qos,
    // [MQTT-3.3.1-9]: sent because of a subscription made before it was published: retain 0.
    retain: false,
    // [MQTT-3.3.1-1]: DUP on a re-delivery.
    dup: entry.messageId !== NO_ID
  })
  if (entry.messageId !== NO_ID) packet.messageId = entry.messageId
  return packet
}
