// MetaStore key layout of the persistence adapter. One prefix per kind of state, so a prefix scan
// loads one kind at start-up. A client id is followed by U+0000 where more follows: MQTT strings
// cannot contain U+0000 [MQTT-1.5.3-2], so `in2:abc\0` never matches client `abcd`.
//
//   sub:<clientId>\0<topic filter>  JSON { qos, rh, rap, nl, sid?, since }   subscription
//   cur:<clientId>                  float64 LE                              session cursor (log offset)
//   out:<clientId>\0<seq, 16 hex>   packet (codec.ts)                       queued copy (not log-backed)
//   will:<clientId>                 packet                                  will message
//   ret:<topic>                     packet                                  retained message
//   in2:<clientId>\0<msgId, 5 dec>  packet                                  inbound QoS 2 awaiting PUBREL
export const SEP = '\u0000'

export const PREFIX = {
  sub: 'sub:',
  cursor: 'cur:',
  outgoing: 'out:',
  will: 'will:',
  retained: 'ret:',
  incoming: 'in2:'
} as const

export function subKey (clientId: string, topic: string): string { return PREFIX.sub + clientId + SEP + topic }
export function cursorKey (clientId: string): string { return PREFIX.cursor + clientId }
export function outgoingKey (clientId: string, seq: number): string { return PREFIX.outgoing + clientId + SEP + seq.toString(16).padStart(16, '0') }
export function willKey (clientId: string): string { return PREFIX.will + clientId }
export function retainedKey (topic: string): string { return PREFIX.retained + topic }
export function incomingKey (clientId: string, messageId: number): string { return PREFIX.incoming + clientId + SEP + String(messageId).padStart(5, '0') }

// Splits `<prefix><clientId>\0<rest>` into [clientId, rest].
export function splitKey (key: string, prefix: string): [string, string] {
  const at = key.indexOf(SEP, prefix.length)
  if (at < 0) return [key.slice(prefix.length), '']
  return [key.slice(prefix.length, at), key.slice(at + 1)]
}

export function encodeOffset (offset: number): Buffer {
  const buf = Buffer.allocUnsafe(8)
  buf.writeDoubleLE(offset, 0)
  return buf
}

export function decodeOffset (buf: Buffer): number {
  return buf.length === 8 ? buf.readDoubleLE(0) : 0
}
