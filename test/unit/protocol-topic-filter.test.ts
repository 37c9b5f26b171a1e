import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { TopicFilterSet, isValidTopicFilter, topicMatches } from '../../src/protocol/topic-filter.js'

test('topic filter matching follows the MQTT rules', () => {
  const cases: Array<[string, string, boolean]> = [
    ['#', 'a/b', true], ['#', 'a', true], ['#', '$SYS/x', false], // [MQTT-4.7.2-1]
    ['a/#', 'a', true], ['a/#', 'a/b/c', true], ['a/#', 'ab', false], // [MQTT-4.7.1-2]
    ['a/+', 'a/b', true], ['a/+', 'a/b/c', false], ['a/+', 'a', false], ['+/+', 'a/b', true], // [MQTT-4.7.1-3]
    ['+', '', true], ['a/+/c', 'a//c', true], ['a/b', 'a/b', true], ['a/b', 'a/bc', false], ['a/b', 'a', false],
    ['devices/#', 'devices/42/telemetry', true], ['devices/+/telemetry', 'devices/42/status', false], ['+/x', '$SYS/x', false]
  ]
  for (const [f, t, want] of cases) assert.equal(topicMatches(f, t), want, `${f} vs ${t}`)
})

test('a filter without wildcards matches exactly its topic (property)', () => {
  const level = fc.stringMatching(/^[a-z0-9]{0,4}$/)
  const topic = fc.array(level, { minLength: 1, maxLength: 5 }).map((ls) => ls.join('/'))
  fc.assert(fc.property(topic, topic, (a, b) => { assert.equal(topicMatches(a, b), a === b) }))
  fc.assert(fc.property(topic, (a) => { assert.equal(topicMatches('#', a), true); assert.equal(topicMatches(a + '/#', a), true) }))
})

test('filter sets and validation', () => {
  const s = new TopicFilterSet(['devices/#', 'alarms/+'])
  assert.equal(s.matches('devices/1/t'), true)
  assert.equal(s.matches('alarms/x'), true)
  assert.equal(s.matches('other'), false)
  assert.equal(isValidTopicFilter('a/#'), true)
  assert.equal(isValidTopicFilter('a/#/b'), false)
  assert.equal(isValidTopicFilter('a/b+'), false)
  assert.equal(isValidTopicFilter(''), false)
})
