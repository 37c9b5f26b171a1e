import { readFileSync } from 'node:fs'
import { parse as parseYaml, YAMLParseError } from 'yaml'
import { tributaryError } from '../errors/index.js'
import { coerceField, flattenSchema, type ConfigOf, type FlatField, type Schema } from './schema.js'

export interface LoadSources {
  // The subcommand's arguments, e.g. ['--mqtt-port', '1883', '--config', 'edge.yaml'].
  argv: readonly string[]
  // Environment; TRIBUTARY_<FLAG_IN_CAPS> sets a field (e.g. TRIBUTARY_MQTT_PORT=1883).
  env?: Readonly<Record<string, string | undefined>>
}

export interface ParsedFlags {
  values: Map<string, string[]>
  configFile: string | undefined
}

// Flags: `--name value`, `--name=value`, bare `--name` (true) and `--no-name` (false) for booleans.
export function parseFlags (argv: readonly string[], fields: readonly FlatField[]): ParsedFlags {
  const byFlag = new Map<string, FlatField>()
  for (const f of fields) if (f.spec.flag !== undefined) byFlag.set(f.spec.flag, f)
  const values = new Map<string, string[]>()
  let configFile: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (!arg.startsWith('--')) throw tributaryError('TRIB_ERR_CLI_USAGE', `unexpected argument "${arg}"`)
    const eq = arg.indexOf('=')
    let name = eq === -1 ? arg.slice(2) : arg.slice(2, eq)
    let value: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1)
    if (name === 'config') {
      configFile = value ?? argv[++i]
      if (configFile === undefined) throw tributaryError('TRIB_ERR_CLI_USAGE', 'flag --config needs a file path')
      continue
    }
    let field = byFlag.get(name)
    if (field === undefined && name.startsWith('no-') && byFlag.get(name.slice(3))?.spec.kind === 'bool') {
      name = name.slice(3)
      field = byFlag.get(name)
      value = 'false'
    }
    if (field === undefined) throw tributaryError('TRIB_ERR_CLI_USAGE', `unknown flag --${name}`)
    if (value === undefined) {
      const next = argv[i + 1]
      if (field.spec.kind === 'bool' && (next === undefined || next.startsWith('--'))) value = 'true'
      else if (next === undefined) throw tributaryError('TRIB_ERR_CLI_USAGE', `flag --${name} needs a value`)
      else { value = next; i++ }
    }
    const list = values.get(field.path) ?? []
    list.push(value)
    values.set(field.path, list)
  }
  return { values, configFile }
}

function readConfigFile (file: string): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw tributaryError('TRIB_ERR_CONFIG_FILE', `cannot read config file ${file}: ${(err as Error).message}`, { file }, err)
  }
  let doc: unknown
  try {
    doc = parseYaml(text)
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos !== undefined ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}` : ''
    throw tributaryError('TRIB_ERR_CONFIG_FILE', `config file ${file} is not valid YAML${where}: ${(err as Error).message.split('\n')[0]}`, { file }, err)
  }
  if (doc === null || doc === undefined) return {}
  if (typeof doc !== 'object' || Array.isArray(doc)) throw tributaryError('TRIB_ERR_CONFIG_FILE', `config file ${file} must hold a mapping of settings`, { file })
  return doc as Record<string, unknown>
}

// Flattens a YAML document into dotted paths, refusing keys the schema does not know.
function flattenDoc (doc: Record<string, unknown>, known: Set<string>, sections: Set<string>, prefix = ''): Map<string, unknown> {
  const out = new Map<string, unknown>()
  for (const [key, value] of Object.entries(doc)) {
    const path = prefix === '' ? key : `${prefix}.${key}`
    if (known.has(path)) out.set(path, value)
    else if (sections.has(path) && value !== null && typeof value === 'object' && !Array.isArray(value)) {
      for (const [k, v] of flattenDoc(value as Record<string, unknown>, known, sections, path)) out.set(k, v)
    } else {
      throw tributaryError('TRIB_ERR_CONFIG_INVALID', `config field "${path}": unknown setting`, { field: path })
    }
  }
  return out
}

function setPath (target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.')
  let node = target
  for (let i = 0; i < parts.length - 1; i++) {
    node[parts[i]] ??= {}
    node = node[parts[i]] as Record<string, unknown>
  }
  node[parts[parts.length - 1]] = value
}

function deepFreeze<T> (obj: T): T {
  if (obj !== null && typeof obj === 'object' && !Object.isFrozen(obj)) {
    Object.freeze(obj)
    for (const v of Object.values(obj)) deepFreeze(v)
  }
  return obj
}

export function envName (flag: string): string {
  return 'TRIBUTARY_' + flag.toUpperCase().replace(/-/g, '_')
}

// defaults < config file < environment < flags; validated and frozen.
export function loadConfig<S extends Schema> (schema: S, sources: LoadSources): ConfigOf<S> {
  const fields = flattenSchema(schema)
  const known = new Set(fields.map((f) => f.path))
  const sections = new Set<string>()
  for (const f of fields) {
    const parts = f.path.split('.')
    for (let i = 1; i < parts.length; i++) sections.add(parts.slice(0, i).join('.'))
  }
  const flags = parseFlags(sources.argv, fields)
  const configFile = flags.configFile ?? sources.env?.TRIBUTARY_CONFIG
  const fromFile = configFile === undefined ? new Map<string, unknown>() : flattenDoc(readConfigFile(configFile), known, sections)

  const result: Record<string, unknown> = {}
  for (const { path, spec } of fields) {
    let raw: unknown = spec.default
    if (fromFile.has(path)) raw = fromFile.get(path)
    const envValue = spec.flag === undefined ? undefined : sources.env?.[envName(spec.flag)]
    if (envValue !== undefined) raw = spec.kind === 'list' ? envValue.split(',').filter((s) => s !== '') : envValue
    const flagValues = flags.values.get(path)
    if (flagValues !== undefined) raw = spec.kind === 'list' ? flagValues : flagValues[flagValues.length - 1]
    setPath(result, path, raw === spec.default ? spec.default : coerceField(path, spec, raw))
  }
  return deepFreeze(result) as ConfigOf<S>
}

// Help text generated from the schema, so docs and flags cannot drift apart.
export function describeFlags (schema: Schema): string {
  return flattenSchema(schema)
    .filter((f) => f.spec.flag !== undefined)
    .map((f) => {
      const def = Array.isArray(f.spec.default) ? (f.spec.default.length === 0 ? '' : ` (default ${f.spec.default.join(',')})`) : (f.spec.default === undefined ? '' : ` (default ${String(f.spec.default)})`)
      return `  --${f.spec.flag!.padEnd(24)} ${f.spec.doc}${def}`
    })
    .join('\n')
}

// A Markdown table of every setting, for the README's configuration reference.
export function describeSchemaMarkdown (schema: Schema): string {
  const rows = flattenSchema(schema).map((f) => {
    const def = JSON.stringify(f.spec.default) ?? ''
    return `| \`${f.path}\` | ${f.spec.flag === undefined ? '' : '`--' + f.spec.flag + '`'} | ${f.spec.kind} | \`${def}\` | ${f.spec.doc} |`
  })
  return ['| setting (YAML) | flag | kind | default | meaning |', '| --- | --- | --- | --- | --- |', ...rows].join('\n')
}
