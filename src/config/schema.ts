import { tributaryError } from '../errors/index.js'

// A config schema is declared once: each field has its kind, default, unit (in the name, e.g.
// `segmentBytes`, `flushIntervalMs`), limits, the CLI flag that sets it and a line of docs.
// Values come from defaults < YAML file < environment (TRIBUTARY_<FLAG>) < flags, are validated
// at start-up and the result is frozen. A bad value is a TRIB_ERR_CONFIG_INVALID naming the field.

interface BaseSpec<T> {
  default: T
  doc: string
  // CLI flag without the leading dashes; omitted for file-only settings.
  flag?: string
}
export interface IntSpec extends BaseSpec<number> { kind: 'int', min?: number, max?: number }
export interface NumberSpec extends BaseSpec<number> { kind: 'number', min?: number, max?: number }
// Accepts a number of bytes or a string like "64MiB", "512KiB", "1GiB", "10MB".
export interface BytesSpec extends BaseSpec<number> { kind: 'bytes', min?: number, max?: number }
// Accepts a number of milliseconds or a string like "250ms", "30s", "5m", "2h", "7d".
export interface DurationSpec extends BaseSpec<number> { kind: 'duration', min?: number, max?: number }
export interface StringSpec extends BaseSpec<string> { kind: 'string', nonEmpty?: boolean }
export interface OptionalStringSpec extends BaseSpec<string | undefined> { kind: 'optionalString' }
export interface BoolSpec extends BaseSpec<boolean> { kind: 'bool' }
export interface EnumSpec<V extends string = string> extends BaseSpec<V> { kind: 'enum', values: readonly V[] }
// A repeatable flag (`--forward a --forward b`) or a YAML list.
export interface ListSpec extends BaseSpec<readonly string[]> { kind: 'list' }

export type FieldSpec = IntSpec | NumberSpec | BytesSpec | DurationSpec | StringSpec | OptionalStringSpec | BoolSpec | EnumSpec | ListSpec
export interface Schema { readonly [key: string]: FieldSpec | Schema }

export type ConfigOf<S> = {
  readonly [K in keyof S]: S[K] extends EnumSpec<infer V> ? V
    : S[K] extends FieldSpec ? S[K]['default']
      : ConfigOf<S[K]>
}

function isSpec (x: FieldSpec | Schema): x is FieldSpec {
  return typeof (x as FieldSpec).kind === 'string' && 'default' in x && 'doc' in x
}

export interface FlatField { path: string, spec: FieldSpec }

export function flattenSchema (schema: Schema, prefix = ''): FlatField[] {
  const out: FlatField[] = []
  for (const [key, value] of Object.entries(schema)) {
    const path = prefix === '' ? key : `${prefix}.${key}`
    if (isSpec(value)) out.push({ path, spec: value })
    else out.push(...flattenSchema(value, path))
  }
  return out
}

const BYTE_UNITS: Record<string, number> = {
  '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4, k: 1024, m: 1024 ** 2, g: 1024 ** 3
}
const DURATION_UNITS: Record<string, number> = { '': 1, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

function parseWithUnit (raw: string, units: Record<string, number>): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(raw)
  if (m === null) return undefined
  const factor = units[m[2].toLowerCase()]
  if (factor === undefined) return undefined
  return Math.round(Number(m[1]) * factor)
}

function invalid (path: string, message: string, value: unknown): never {
  throw tributaryError('TRIB_ERR_CONFIG_INVALID', `config field "${path}": ${message} (got ${JSON.stringify(value)})`, { field: path, value })
}

function checkRange (path: string, n: number, spec: { min?: number, max?: number }, raw: unknown): number {
  if (spec.min !== undefined && n < spec.min) invalid(path, `must be at least ${spec.min}`, raw)
  if (spec.max !== undefined && n > spec.max) invalid(path, `must be at most ${spec.max}`, raw)
  return n
}

// Turns a raw value (from YAML, env or a flag; strings for the last two) into the field's type.
export function coerceField (path: string, spec: FieldSpec, raw: unknown): unknown {
  switch (spec.kind) {
    case 'int':
    case 'number': {
      const n = typeof raw === 'number' ? raw : (typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN)
      if (!Number.isFinite(n)) invalid(path, 'must be a number', raw)
      if (spec.kind === 'int' && !Number.isInteger(n)) invalid(path, 'must be an integer', raw)
      return checkRange(path, n, spec, raw)
    }
    case 'bytes':
    case 'duration': {
      const units = spec.kind === 'bytes' ? BYTE_UNITS : DURATION_UNITS
      const n = typeof raw === 'number' ? raw : (typeof raw === 'string' ? parseWithUnit(raw, units) : undefined)
      if (n === undefined || !Number.isFinite(n) || n < 0) {
        invalid(path, spec.kind === 'bytes' ? 'must be a size like 1048576, "512KiB" or "64MiB"' : 'must be a duration like 500, "250ms", "30s" or "5m"', raw)
      }
      return checkRange(path, n, spec, raw)
    }
    case 'string':
      if (typeof raw !== 'string' && typeof raw !== 'number') invalid(path, 'must be a string', raw)
      if (spec.nonEmpty === true && String(raw) === '') invalid(path, 'must not be empty', raw)
      return String(raw)
    case 'optionalString':
      if (raw === null || raw === undefined || raw === '') return undefined
      if (typeof raw !== 'string' && typeof raw !== 'number') invalid(path, 'must be a string', raw)
      return String(raw)
    case 'bool':
      if (typeof raw === 'boolean') return raw
      if (raw === 'true' || raw === '1' || raw === 'yes') return true
      if (raw === 'false' || raw === '0' || raw === 'no') return false
      return invalid(path, 'must be true or false', raw)
    case 'enum':
      if (typeof raw !== 'string' || !spec.values.includes(raw)) invalid(path, `must be one of ${spec.values.join(', ')}`, raw)
      return raw
    case 'list':
      if (typeof raw === 'string') return [raw]
      if (!Array.isArray(raw) || !raw.every((x) => typeof x === 'string' || typeof x === 'number')) invalid(path, 'must be a list of strings', raw)
      return (raw as unknown[]).map(String)
  }
}
