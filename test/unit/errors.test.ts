import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { ERROR_CODES } from '../../src/errors/index.js'

test('every error code is documented in src/errors/README.md', () => {
  const doc = readFileSync(new URL('../../src/errors/README.md', import.meta.url), 'utf8')
  const undocumented = Object.keys(ERROR_CODES).filter((code) => !doc.includes('`' + code + '`'))
  assert.deepEqual(undocumented, [])
})

test('every documented code exists', () => {
  const doc = readFileSync(new URL('../../src/errors/README.md', import.meta.url), 'utf8')
  const documented = [...doc.matchAll(/`(TRIB_ERR_[A-Z_]+)`/g)].map((m) => m[1])
  const unknown = documented.filter((code) => !(code in ERROR_CODES))
  assert.deepEqual(unknown, [])
})
