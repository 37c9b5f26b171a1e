// README.md's configuration reference must match the edge schema (flags, defaults, docs).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { withFreshTable } from '../../edge/config-docs.js'

test('README configuration table is generated from the current edge schema', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  const fresh = withFreshTable(readme)
  assert.ok(fresh !== undefined, 'README.md lacks the edge-config-table markers')
  assert.equal(readme, fresh, 'README.md configuration table is stale: run `node --import tsx edge/config-docs.ts --write`')
})
