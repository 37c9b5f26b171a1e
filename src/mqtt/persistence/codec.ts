// Packet <-> bytes for the MetaStore: [u32 BE header length][header JSON][payload bytes].
// The header is the packet's own fields except the payload (whatever aedes put there: cmd, topic,
// qos, retain, messageId, brokerId, clientId, ...); `$p` records the payload's type so a string
// payload comes back a string and a Buffer a Buffer. Fields whose value is undefined are dropped
// (JSON); callers that need them (messageId) restore them.
const PAYLOAD_NONE = 0
const PAYLOAD_BUFFER = 1
const PAYLOAD_STRING = 2

export type PlainPacket = Record<string, unknown>

export function encodePacket (packet: object): Buffer {
  const fields: PlainPacket = {}
  let payload: Buffer = EMPTY
  let kind = PAYLOAD_NONE
  for (const [key, value] of Object.entries(packet)) {
    if (key === 'payload') {
      if (typeof value === 'string') { kind = PAYLOAD_STRING; payload = Buffer.from(value, 'utf8') } else if (value instanceof Uint8Array) { kind = PAYLOAD_BUFFER; payload = Buffer.from(value.buffer, value.byteOffset, value.byteLength) }
    } else if (value !== undefined && typeof value !== 'function') {
      fields[key] = value
    }
  }
  fields.$p = kind
  const header = Buffer.from(JSON.stringify(fields), 'utf8')
  const out = Buffer.allocUnsafe(4 + header.length + payload.length)
  out.writeUInt32BE(header.length, 0)
  header.copy(out, 4)
  payload.copy(out, 4 + header.length)
  return out
}

export function decodePacket (buf: Buffer): PlainPacket {
  const headerLength = buf.readUInt32BE(0)
  const fields = JSON.parse(buf.toString('utf8', 4, 4 + headerLength)) as PlainPacket
  const kind = fields.$p
  delete fields.$p
  const bytes = buf.subarray(4 + headerLength)
  if (kind === PAYLOAD_STRING) fields.payload = bytes.toString('utf8')
  else if (kind === PAYLOAD_BUFFER) fields.payload = Buffer.from(bytes)
  return fields
}

const EMPTY = Buffer.alloc(0)
