// NATS subject names for the JetStream store, and a safe encoding of identifiers into subject
// tokens.
//
// A NATS subject token must be non-empty and must not contain '.', whitespace, or be '*' / '>'.
// MQTT topic levels and edge ids can hold any UTF-8 except NUL (levels may even be empty), so we
// encode each identifier bijectively: [A-Za-z0-9_-] stay as they are, every other UTF-8 byte
// becomes '=' + two upper-case hex digits, and the empty string becomes a lone '='. A non-empty
// input never encodes to a lone '=' (every '=' it produces is followed by two hex digits), so
// decoding is unambiguous.

const ESCAPE = 0x3d // '='
const HEX = '0123456789ABCDEF'

function isSafeByte (b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x5f || b === 0x2d
}

export function encodeToken (value: string): string {
  if (value.length === 0) return '='
  // Fast path: most edge ids and topic levels are plain ASCII names.
  let plain = true
  for (let i = 0; i < value.length; i++) {
    if (!isSafeByte(value.charCodeAt(i))) { plain = false; break }
  }
  if (plain) return value
  const bytes = Buffer.from(value, 'utf8')
  let out = ''
  for (const b of bytes) {
    out += isSafeByte(b) ? String.fromCharCode(b) : '=' + HEX[b >> 4] + HEX[b & 15]
  }
  return out
}

// Returns undefined for a token that encodeToken cannot have produced.
export function decodeToken (token: string): string | undefined {
  if (token === '=') return ''
  if (token.length === 0) return undefined
  const bytes: number[] = []
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i)
    if (c === ESCAPE) {
      const hex = token.slice(i + 1, i + 3)
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined
      bytes.push(parseInt(hex, 16))
      i += 2
    } else if (isSafeByte(c)) {
      bytes.push(c)
    } else {
      return undefined
    }
  }
  const buf = Buffer.from(bytes)
  const text = buf.toString('utf8')
  // Reject invalid UTF-8 (it would not round-trip).
  return Buffer.from(text, 'utf8').equals(buf) ? text : undefined
}

// The stream and bucket names, prefixed so that several deployments (or tests) can share one
// NATS account without clashing.
export interface StoreNames {
  readonly uplinkStream: string
  readonly uplinkPrefix: string
  readonly downlinkStream: string
  readonly downlinkPrefix: string
  readonly offsetBucket: string
  readonly leaseBucket: string
  readonly counterBucket: string
}

// `prefix` must be a plain token ([A-Za-z0-9_-]); it names streams (which cannot hold '.').
export function storeNames (prefix: string): StoreNames {
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(prefix)) throw new Error(`invalid JetStream name prefix ${JSON.stringify(prefix)}`)
  const upper = prefix.toUpperCase()
  const lower = prefix.toLowerCase()
  return Object.freeze({
    uplinkStream: `${upper}_UP`,
    uplinkPrefix: `${lower}.up`,
    downlinkStream: `${upper}_DOWN`,
    downlinkPrefix: `${lower}.down`,
    offsetBucket: `${upper}_OFFSETS`,
    leaseBucket: `${upper}_LEASES`,
    counterBucket: `${upper}_COUNTERS`
  })
}

// All uplink chunks of one edge go to ONE subject: the per-subject last sequence is what chains an
// edge's writes (Nats-Expected-Last-Subject-Sequence), see JETSTREAM.md.
export function uplinkSubject (names: StoreNames, edgeId: string): string {
  return `${names.uplinkPrefix}.${encodeToken(edgeId)}`
}

export function downlinkSubject (names: StoreNames, edgeId: string): string {
  return `${names.downlinkPrefix}.${encodeToken(edgeId)}`
}

// Edge id from an uplink/downlink subject, undefined if the subject is not ours.
export function edgeFromSubject (prefix: string, subject: string): string | undefined {
  if (!subject.startsWith(prefix + '.')) return undefined
  const token = subject.slice(prefix.length + 1)
  if (token.includes('.')) return undefined
  return decodeToken(token)
}

// KV keys allow [-/_=.a-zA-Z0-9]; our token alphabet is a subset, so encoded ids are valid keys.
export function kvKey (id: string): string {
  return encodeToken(id)
}
