import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig, describeSchemaMarkdown, type Schema } from '../../src/config/index.js'
import { edgeSchema } from '../../src/config/edge.js'
import { isTributaryError } from '../../src/errors/index.js'
import { tempDir } from '../helpers/net.js'

const schema = {
  port: { kind: 'int', min: 0, max: 65535, default: 1883, flag: 'port', doc: 'port' },
  verbose: { kind: 'bool', default: false, flag: 'verbose', doc: 'verbose' },
  log: {
    segmentBytes: { kind: 'bytes', min: 1024, default: 4096, flag: 'segment-bytes', doc: 'segment' },
    flushIntervalMs: { kind: 'duration', default: 5, flag: 'flush-interval', doc: 'flush' },
    policy: { kind: 'enum', values: ['always', 'interval'] as const, default: 'interval', flag: 'policy', doc: 'policy' }
  },
  forward: { kind: 'list', default: ['#'], flag: 'forward', doc: 'forward' }
} as const satisfies Schema

function expectCode (fn: () => unknown, code: string, fieldMention: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isTributaryError(err), `not a TributaryError: ${String(err)}`)
    assert.equal(err.code, code)
    assert.match(err.message, new RegExp(fieldMention.replace(/[.]/g, '\\.')))
    return true
  })
}

test('defaults when nothing is given', () => {
  const c = loadConfig(schema, { argv: [] })
  assert.deepEqual(c, { port: 1883, verbose: false, log: { segmentBytes: 4096, flushIntervalMs: 5, policy: 'interval' }, forward: ['#'] })
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.log) && Object.isFrozen(c.forward))
})

test('flags in both forms, units, booleans and repeatable lists', () => {
  const c = loadConfig(schema, { argv: ['--port=1884', '--segment-bytes', '64KiB', '--flush-interval', '2s', '--verbose', '--forward', 'a/#', '--forward', 'b'] })
  assert.equal(c.port, 1884)
  assert.equal(c.log.segmentBytes, 65536)
  assert.equal(c.log.flushIntervalMs, 2000)
  assert.equal(c.verbose, true)
  assert.deepEqual(c.forward, ['a/#', 'b'])
  assert.equal(loadConfig(schema, { argv: ['--verbose', '--no-verbose'] }).verbose, false)
})

test('file < env < flags', async () => {
  const dir = await tempDir('config')
  try {
    const file = join(dir.path, 'c.yaml')
    writeFileSync(file, 'port: 2000\nlog:\n  segmentBytes: 1MiB\n  policy: always\nforward: [x, y]\n')
    const fromFile = loadConfig(schema, { argv: ['--config', file] })
    assert.equal(fromFile.port, 2000)
    assert.equal(fromFile.log.segmentBytes, 1024 * 1024)
    assert.equal(fromFile.log.policy, 'always')
    assert.deepEqual(fromFile.forward, ['x', 'y'])
    const fromEnv = loadConfig(schema, { argv: ['--config', file], env: { TRIBUTARY_PORT: '3000' } })
    assert.equal(fromEnv.port, 3000)
    const fromFlag = loadConfig(schema, { argv: ['--config', file, '--port', '4000'], env: { TRIBUTARY_PORT: '3000' } })
    assert.equal(fromFlag.port, 4000)
  } finally { await dir.remove() }
})

test('bad values name the field', async () => {
  expectCode(() => loadConfig(schema, { argv: ['--port', '70000'] }), 'TRIB_ERR_CONFIG_INVALID', 'port')
  expectCode(() => loadConfig(schema, { argv: ['--port', 'abc'] }), 'TRIB_ERR_CONFIG_INVALID', 'port')
  expectCode(() => loadConfig(schema, { argv: ['--segment-bytes', '12 parsecs'] }), 'TRIB_ERR_CONFIG_INVALID', 'log.segmentBytes')
  expectCode(() => loadConfig(schema, { argv: ['--policy', 'sometimes'] }), 'TRIB_ERR_CONFIG_INVALID', 'log.policy')
  expectCode(() => loadConfig(schema, { argv: ['--bogus', '1'] }), 'TRIB_ERR_CLI_USAGE', 'bogus')
  expectCode(() => loadConfig(schema, { argv: ['--port'] }), 'TRIB_ERR_CLI_USAGE', 'port')
  const dir = await tempDir('config')
  try {
    const unknown = join(dir.path, 'u.yaml')
    writeFileSync(unknown, 'log:\n  segmentBites: 10\n')
    expectCode(() => loadConfig(schema, { argv: ['--config', unknown] }), 'TRIB_ERR_CONFIG_INVALID', 'log.segmentBites')
    const broken = join(dir.path, 'b.yaml')
    writeFileSync(broken, 'port: [1, 2\n')
    expectCode(() => loadConfig(schema, { argv: ['--config', broken] }), 'TRIB_ERR_CONFIG_FILE', 'line')
    expectCode(() => loadConfig(schema, { argv: ['--config', join(dir.path, 'missing.yaml')] }), 'TRIB_ERR_CONFIG_FILE', 'missing.yaml')
  } finally { await dir.remove() }
})

test('the edge schema loads with defaults and documents every field', () => {
  const c = loadConfig(edgeSchema, { argv: [] })
  assert.equal(c.commitlog.flushPolicy, 'interval')
  const table = describeSchemaMarkdown(edgeSchema)
  assert.match(table, /`commitlog\.segmentBytes`/)
})
