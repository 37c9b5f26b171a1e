// Parses fault specs like 'at=10s cut=5s', 'at=20s blackhole=30s', 'at=0s latency=50ms for=10s',
// 'at=5s throttle=10KiB for=5s' (throttle is bytes per second, per direction and connection).
import { coerceField } from '../../src/config/schema.js'
import { tributaryError } from '../../src/errors/index.js'

export type FaultKind = 'cut' | 'blackhole' | 'latency' | 'throttle'

export interface Fault {
  kind: FaultKind
  atMs: number
  durationMs: number
  // latency: added delay in ms; throttle: bytes per second; cut/blackhole: unused (0).
  amount: number
  spec: string
}

export function parseFault (spec: string, field: string): Fault {
  const parts = new Map<string, string>()
  for (const token of spec.trim().split(/\s+/)) {
    const eq = token.indexOf('=')
    if (eq <= 0) throw tributaryError('TRIB_ERR_CONFIG_INVALID', `config field "${field}": expected key=value pairs like 'at=10s cut=5s', got ${JSON.stringify(token)}`, { field })
    parts.set(token.slice(0, eq), token.slice(eq + 1))
  }
  const known = new Set(['at', 'cut', 'blackhole', 'latency', 'throttle', 'for'])
  for (const key of parts.keys()) {
    if (!known.has(key)) throw tributaryError('TRIB_ERR_CONFIG_INVALID', `config field "${field}": unknown key "${key}" (use at, cut, blackhole, latency, throttle, for)`, { field })
  }
  const kinds = (['cut', 'blackhole', 'latency', 'throttle'] as const).filter((k) => parts.has(k))
  if (kinds.length !== 1) throw tributaryError('TRIB_ERR_CONFIG_INVALID', `config field "${field}": needs exactly one of cut=, blackhole=, latency=, throttle= in ${JSON.stringify(spec)}`, { field })
  const kind = kinds[0]
  const atMs = coerceField(`${field}.at`, { kind: 'duration', default: 0, doc: '' }, parts.get('at') ?? '0') as number
  if (kind === 'cut' || kind === 'blackhole') {
    const durationMs = coerceField(`${field}.${kind}`, { kind: 'duration', min: 1, default: 0, doc: '' }, parts.get(kind)) as number
    return { kind, atMs, durationMs, amount: 0, spec }
  }
  if (!parts.has('for')) throw tributaryError('TRIB_ERR_CONFIG_INVALID', `config field "${field}.for": ${kind} needs a duration, e.g. for=10s`, { field: `${field}.for` })
  const durationMs = coerceField(`${field}.for`, { kind: 'duration', min: 1, default: 0, doc: '' }, parts.get('for')) as number
  const amount = kind === 'latency'
    ? coerceField(`${field}.latency`, { kind: 'duration', min: 0, max: 600_000, default: 0, doc: '' }, parts.get('latency')) as number
    : coerceField(`${field}.throttle`, { kind: 'bytes', min: 1, default: 0, doc: '' }, parts.get('throttle')) as number
  return { kind, atMs, durationMs, amount, spec }
}
