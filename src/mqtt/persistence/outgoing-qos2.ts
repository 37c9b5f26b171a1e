// Outgoing QoS 2 state of log-backed deliveries to persistent sessions (o2: keys, keys.ts).
//
// A cursor says which records a session still needs, not which packet identifier a delivery in
// flight had, nor whether the subscriber already PUBREC'd it. Without those, a restart after a
// crash resent such a message as a NEW PUBLISH (new identifier, DUP 0), which a subscriber that
// had received it (method B, MQTT 3.1.1 4.3.3) delivers a second time: exactly once broken.
// [MQTT-4.4.0-1]: on reconnect the server re-sends unacknowledged PUBLISH and PUBREL packets with
// their original identifiers. So:
//   - before a QoS 2 PUBLISH or PUBREL goes to the socket, its (offset, identifier, step) is
//     committed to the MetaStore (persistence.ts, outgoingUpdate awaits it; aedes writes after);
//   - PUBCOMP marks it completed (write-behind: if lost, a restart resends the PUBREL, which the
//     receiver answers with PUBCOMP even for an identifier it no longer holds: harmless);
//   - the key is deleted in the same batch as the cursor write that passes the record. Until
//     then a restart replays from below it (an earlier delivery still in flight holds the cursor,
//     or the cursor write lags by cursorFlushMs) and must know it is completed, or it would send
//     it again as a new message.
// QoS 1 keeps writing nothing per message (a resent QoS 1 duplicate is allowed).
import type { Logger } from '../../log/index.js'
import type { MetaOp, MetaStore } from '../../meta/types.js'
import { decodeOutgoingQos2, encodeOutgoingQos2, outgoingQos2Key, PREFIX, QOS2_COMPLETED, QOS2_PUBLISHED, QOS2_RELEASED, splitKey } from './keys.js'
import type { Entry, Session } from './session.js'

// The entry's current step (PUBLISH or PUBREL sent), put before aedes writes that packet.
export function putOutgoingQos2 (clientId: string, entry: Entry): MetaOp {
  entry.stored = true
  return { type: 'put', key: outgoingQos2Key(clientId, entry.offset), value: encodeOutgoingQos2(entry.pubrel ? QOS2_RELEASED : QOS2_PUBLISHED, entry.messageId, entry.nextOffset) }
}

// PUBCOMP (or aedes dropping the delivery) of a stored entry; the caller acks the entry after.
export function completeOutgoingQos2 (session: Session, entry: Entry): MetaOp {
  session.doneKeys.push(entry.offset)
  return { type: 'put', key: outgoingQos2Key(session.clientId, entry.offset), value: encodeOutgoingQos2(QOS2_COMPLETED, entry.messageId, entry.nextOffset) }
}

// Deletes for the completed keys the session's persisted cursor has now passed: append them to
// the batch that writes that cursor (atomic: never a deleted key with the old cursor).
export function pushPassedDoneKeys (session: Session, ops: MetaOp[]): void {
  if (session.doneKeys.length === 0) return
  const passed = session.takePassedDoneKeys(session.persistedCursor)
  if (passed !== null) for (const offset of passed) ops.push({ type: 'del', key: outgoingQos2Key(session.clientId, offset) })
}

// Every key a session has (clean session, session removal).
export function pushAllOutgoingQos2 (session: Session, ops: MetaOp[]): void {
  for (const entry of session.entries.values()) if (entry.stored) ops.push({ type: 'del', key: outgoingQos2Key(session.clientId, entry.offset) })
  for (const offset of session.doneKeys) ops.push({ type: 'del', key: outgoingQos2Key(session.clientId, offset) })
}

// Start-up: tracks each stored delivery at or above its session's cursor (Session.restore): in
// flight ones are resent with the same identifier by the next replay, completed ones are skipped.
// Returns deletes for keys that are done or unusable:
//   - below the session's persisted cursor: a persisted cursor never passes an unacknowledged
//     entry, so that delivery completed (the delete that goes with the cursor write was lost, or
//     the key was written by an older version);
//   - no such session (cleaned; its deletes were lost), an unreadable value, or a record beyond
//     the recovered log end (cannot happen for a QoS 2 record, which is durable before it is
//     routed; checked so a bad key cannot pin the cursor).
// Call after the cursors are loaded and clamped to the log end.
export async function restoreOutgoingQos2 (meta: MetaStore, sessions: ReadonlyMap<string, Session>, logEnd: number, logger: Logger): Promise<{ restored: number, stale: MetaOp[] }> {
  const stale: MetaOp[] = []
  let restored = 0
  for await (const [key, value] of meta.scan(PREFIX.outgoingQos2)) {
    const [clientId, offsetHex] = splitKey(key, PREFIX.outgoingQos2)
    const offset = parseInt(offsetHex, 16)
    const state = decodeOutgoingQos2(value)
    const session = sessions.get(clientId)
    if (session === undefined || state === undefined || !Number.isFinite(offset) || offset < session.cursor || state.nextOffset <= offset || state.nextOffset > logEnd) {
      if (state === undefined || state.nextOffset > logEnd) logger.warn({ clientId, offset, logEnd }, 'outgoing QoS 2 state is unreadable or past the log end: dropped')
      stale.push({ type: 'del', key })
      continue
    }
    session.restore({ offset, nextOffset: state.nextOffset }, state.messageId, state.step === QOS2_RELEASED, state.step === QOS2_COMPLETED)
    restored++
  }
  return { restored, stale }
}
