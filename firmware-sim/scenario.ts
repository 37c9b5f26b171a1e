// Scenario files (firmware-sim/scenarios/*.yaml): named device groups, each with its own rate,
// QoS, payload, session and keepalive, plus an optional fault schedule and command rate.
// Validated field by field with the config schema's coercion; an error names the field, e.g.
// `groups[1].qos`. Fields a group omits take the command line's values (--qos, --rate, ...).
import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { coerceField, type FieldSpec } from '../src/config/schema.js'
import type { SimConfig } from '../src/config/sim.js'
import { isTributaryError, tributaryError } from '../src/errors/index.js'
import type { DeviceSpec } from './device.js'
import type { DeviceGroup } from './fleet.js'
import { parseFault, type Fault } from './fault/schedule.js'
import { DEFAULT_SENSORS, QUANTITIES } from './sensors.js'

export interface Scenario {
  name: string
  description: string
  durationMs: number
  groups: DeviceGroup[]
  faults: Fault[]
  commandRatePerSec: number
}

// The device fields of a group, in YAML spelling.
const groupFields: Record<string, FieldSpec> = {
  name: { kind: 'string', default: 'devices', doc: '', nonEmpty: true },
  count: { kind: 'int', min: 0, max: 100_000, default: 0, doc: '' },
  rate: { kind: 'number', min: 0, max: 100_000, default: 1, doc: '' },
  messages: { kind: 'int', min: 0, default: 0, doc: '' },
  qos: { kind: 'int', min: 0, max: 1, default: 1, doc: '' },
  topic: { kind: 'string', default: '', doc: '', nonEmpty: true },
  payload: { kind: 'enum', values: ['json', 'binary'], default: 'json', doc: '' },
  payloadBytes: { kind: 'bytes', min: 24, max: 256 * 1024, default: 64, doc: '' },
  sensors: { kind: 'list', default: [], doc: '' },
  session: { kind: 'enum', values: ['clean', 'persistent'], default: 'clean', doc: '' },
  keepalive: { kind: 'duration', min: 0, max: 65_535_000, default: 30_000, doc: '' },
  inflight: { kind: 'int', min: 1, max: 32_000, default: 16, doc: '' },
  queueLimit: { kind: 'int', min: 0, max: 1_000_000, default: 1000, doc: '' },
  burstEvery: { kind: 'duration', min: 0, default: 0, doc: '' },
  burstSize: { kind: 'int', min: 0, max: 10_000, default: 0, doc: '' },
  backoffMin: { kind: 'duration', min: 1, default: 100, doc: '' },
  backoffMax: { kind: 'duration', min: 1, default: 10_000, doc: '' }
}
const topFields = new Set(['name', 'description', 'duration', 'groups', 'faults', 'commandRate'])

// The group the command line describes (also the defaults of every scenario group).
export function specFromFlags (cfg: SimConfig): DeviceSpec {
  const d = cfg.devices
  return {
    group: 'devices',
    topicTemplate: d.topic,
    qos: d.qos as 0 | 1,
    payload: d.payload,
    payloadBytes: d.payloadBytes,
    sensors: DEFAULT_SENSORS,
    session: d.session,
    keepaliveMs: d.keepaliveMs,
    inflight: Math.min(d.inflight, 32_000),
    queueLimit: d.queueLimit,
    ratePerSec: d.ratePerSec,
    maxMessages: d.messages,
    burstEveryMs: 0,
    burstSize: 0,
    backoffMinMs: d.backoffMinMs,
    backoffMaxMs: d.backoffMaxMs,
    connectTimeoutMs: 10_000
  }
}

function fail (file: string, field: string, why: string): never {
  throw tributaryError('TRIB_ERR_SIM_SCENARIO', `scenario ${file}: field "${field}": ${why}`, { file, field })
}

function coerce (file: string, path: string, spec: FieldSpec, raw: unknown): unknown {
  try {
    return coerceField(path, spec, raw)
  } catch (err) {
    if (isTributaryError(err, 'TRIB_ERR_CONFIG_INVALID')) throw tributaryError('TRIB_ERR_SIM_SCENARIO', `scenario ${file}: ${err.message}`, { file, field: path })
    throw err
  }
}

export function loadScenario (file: string, cfg: SimConfig): Scenario {
  let text: string
  try { text = readFileSync(file, 'utf8') } catch (err) {
    throw tributaryError('TRIB_ERR_SIM_SCENARIO', `scenario ${file}: cannot read: ${(err as Error).message}`, { file })
  }
  let doc: unknown
  try { doc = parseYaml(text) } catch (err) {
    throw tributaryError('TRIB_ERR_SIM_SCENARIO', `scenario ${file}: not valid YAML: ${(err as Error).message.split('\n')[0]}`, { file })
  }
  return parseScenario(doc, file, cfg)
}

export function parseScenario (doc: unknown, file: string, cfg: SimConfig): Scenario {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) fail(file, '(top)', 'must be a mapping with at least "groups"')
  const top = doc as Record<string, unknown>
  for (const key of Object.keys(top)) if (!topFields.has(key)) fail(file, key, `unknown field (known: ${[...topFields].join(', ')})`)
  if (!Array.isArray(top.groups) || top.groups.length === 0) fail(file, 'groups', 'must be a non-empty list of device groups')
  const base = specFromFlags(cfg)
  const groups: DeviceGroup[] = top.groups.map((raw: unknown, i: number) => {
    const where = `groups[${i}]`
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(file, where, 'must be a mapping')
    const g = raw as Record<string, unknown>
    for (const key of Object.keys(g)) if (!(key in groupFields)) fail(file, `${where}.${key}`, `unknown field (known: ${Object.keys(groupFields).join(', ')})`)
    if (!('count' in g)) fail(file, `${where}.count`, 'is required')
    const v = (key: string, fallback: unknown): unknown => key in g ? coerce(file, `${where}.${key}`, groupFields[key], g[key]) : fallback
    const sensors = v('sensors', base.sensors) as string[]
    sensors.forEach((s, j) => { if (!(s in QUANTITIES)) fail(file, `${where}.sensors[${j}]`, `unknown sensor "${s}" (known: ${Object.keys(QUANTITIES).join(', ')})`) })
    const spec: DeviceSpec = {
      ...base,
      group: v('name', `group-${i}`) as string,
      ratePerSec: v('rate', base.ratePerSec) as number,
      maxMessages: v('messages', base.maxMessages) as number,
      qos: v('qos', base.qos) as 0 | 1,
      topicTemplate: v('topic', base.topicTemplate) as string,
      payload: v('payload', base.payload) as 'json' | 'binary',
      payloadBytes: v('payloadBytes', base.payloadBytes) as number,
      sensors,
      session: v('session', base.session) as 'clean' | 'persistent',
      keepaliveMs: v('keepalive', base.keepaliveMs) as number,
      inflight: v('inflight', base.inflight) as number,
      queueLimit: v('queueLimit', base.queueLimit) as number,
      burstEveryMs: v('burstEvery', 0) as number,
      burstSize: v('burstSize', 0) as number,
      backoffMinMs: v('backoffMin', base.backoffMinMs) as number,
      backoffMaxMs: v('backoffMax', base.backoffMaxMs) as number
    }
    if ((spec.burstEveryMs > 0) !== (spec.burstSize > 0)) fail(file, `${where}.burstSize`, 'burstEvery and burstSize go together')
    return { spec, count: v('count', 0) as number }
  })
  const faultsRaw = top.faults ?? []
  if (!Array.isArray(faultsRaw)) fail(file, 'faults', "must be a list of fault specs like 'at=10s cut=5s'")
  const faults = faultsRaw.map((f: unknown, i: number) => {
    if (typeof f !== 'string') fail(file, `faults[${i}]`, "must be a string like 'at=10s cut=5s'")
    try { return parseFault(f, `faults[${i}]`) } catch (err) {
      if (isTributaryError(err)) throw tributaryError('TRIB_ERR_SIM_SCENARIO', `scenario ${file}: ${err.message}`, { file })
      throw err
    }
  })
  return {
    name: 'name' in top ? coerce(file, 'name', { kind: 'string', default: '', doc: '', nonEmpty: true }, top.name) as string : file,
    description: 'description' in top ? String(top.description) : '',
    durationMs: 'duration' in top ? coerce(file, 'duration', { kind: 'duration', min: 0, default: 0, doc: '' }, top.duration) as number : cfg.durationMs,
    groups,
    faults,
    commandRatePerSec: 'commandRate' in top ? coerce(file, 'commandRate', { kind: 'number', min: 0, max: 100_000, default: 0, doc: '' }, top.commandRate) as number : cfg.devices.commandRatePerSec
  }
}
