// Crash test: a publisher sends QoS 1 messages with sequence numbers while the broker process is
// SIGKILLed. After a restart on the same data directory every message that got a PUBACK is in the
// commitlog, and a persistent subscriber (subscribed before the run) receives them in order with
// no gaps.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import { CommitLog } from '../../src/commitlog/index.js'
import { silentLogger } from '../../src/log/index.js'
import { startEdge, type EdgeProcess } from '../helpers/edge-process.js'
import { tempDir, waitFor } from '../helpers/net.js'

const TOPIC = 'crash/seq'
// QoS 1 PUBLISHes the publisher keeps unacknowledged: many are in flight when the kill lands.
const WINDOW = 200
// Acks to collect before the kill, so the log has real content across several flushes.
const ACKS_BEFORE_KILL = 3000

let dir: { path: string, remove: () => Promise<void> } | undefined
let edge: EdgeProcess | undefined
const clients: MqttClient[] = []

after(async () => {
  for (const c of clients) c.end(true)
  await edge?.kill()
  await dir?.remove()
})

// A publisher that keeps WINDOW QoS 1 PUBLISHes (payload: a sequence number) in flight until its
// connection breaks; `acked` holds the sequence numbers that got a PUBACK before that.
interface SeqPublisher { acked: Set<number>, sent: () => number, broken: () => boolean, client: MqttClient }
async function startSeqPublisher (url: string, clientId: string): Promise<SeqPublisher> {
  const pub = mqtt.connect(url, { clientId, reconnectPeriod: 0 })
  clients.push(pub)
  pub.on('error', () => {}) // the connection dies with the broker
  await new Promise<void>((resolve) => pub.once('connect', () => { resolve() }))
  const acked = new Set<number>()
  let sent = 0
  let inFlight = 0
  let broken = false
  pub.once('close', () => { broken = true })
  const pump = (): void => {
    while (!broken && inFlight < WINDOW) {
      const seq = sent++
      inFlight++
      pub.publish(TOPIC, String(seq), { qos: 1 }, (err) => {
        inFlight--
        if (err == null && !broken) acked.add(seq)
        if (!broken) pump()
      })
    }
  }
  pump()
  return { acked, sent: () => sent, broken: () => broken, client: pub }
}

test('every PUBACKed message survives SIGKILL and reaches a persistent subscriber in order, without gaps', async () => {
  dir = await tempDir('edge-crash')
  edge = await startEdge({ dataDir: dir.path })

  // The persistent subscriber registers, then goes offline for the whole run.
  const sub = await mqtt.connectAsync(edge.url, { clientId: 'crash-sub', clean: false, reconnectPeriod: 0 })
  await sub.subscribeAsync(TOPIC, { qos: 1 })
  await sub.endAsync()

  const pub = await startSeqPublisher(edge.url, 'crash-pub')
  const acked = pub.acked
  await waitFor(`${ACKS_BEFORE_KILL} PUBACKs`, () => acked.size >= ACKS_BEFORE_KILL, 30_000)
  await edge.kill()
  await waitFor('the publisher to see the broker die', pub.broken)
  pub.client.end(true)
  const ackedList = [...acked].sort((a, b) => a - b)
  const maxAcked = ackedList[ackedList.length - 1]
  assert.ok(pub.sent() > acked.size, 'some messages were still unacknowledged at the kill')

  // 1. After a restart (recovery), the persistent subscriber gets every acked message, in order.
  edge = await startEdge({ dataDir: dir.path })
  assert.match(edge.output(), /"dirty":true/, 'recovery ran after the SIGKILL')
  const received: number[] = []
  const back = mqtt.connect(edge.url, { clientId: 'crash-sub', clean: false, reconnectPeriod: 0 })
  clients.push(back)
  back.on('message', (_t, payload) => { received.push(Number(payload.toString())) })
  await waitFor(`delivery up to seq ${maxAcked}`, () => received.length > 0 && received[received.length - 1] >= maxAcked, 30_000)
  // Anything beyond the last ack (appended, not yet acked at the kill) may or may not be there;
  // what is there must still be the exact prefix 0, 1, 2, ...: no gap, no reordering.
  await new Promise((resolve) => setTimeout(resolve, 200))
  back.end(true)
  assert.deepEqual(received, Array.from({ length: received.length }, (_, i) => i), 'subscriber got 0..n in order without gaps or duplicates')
  for (const seq of ackedList) assert.ok(seq < received.length, `acked seq ${seq} not delivered`)

  // 2. The commitlog itself, read directly once the broker is stopped, holds every acked message.
  assert.equal(await edge.stop(), 0)
  edge = undefined
  const log = await CommitLog.open({
    dir: join(dir.path, 'log'),
    segmentBytes: 64 * 1024 * 1024,
    flushPolicy: 'interval',
    flushIntervalMs: 5,
    maxRecordBytes: 1024 * 1024 + 65536,
    retentionBytes: 0,
    retentionMs: 0,
    log: silentLogger()
  })
  const inLog: number[] = []
  try {
    let offset = log.startOffset
    for (;;) {
      const batch = log.read(offset, { maxRecords: 1000 })
      for (const r of batch.records) if (r.topic === TOPIC) inLog.push(Number(r.payload.toString()))
      if (batch.status !== 'ok') break
      offset = batch.nextOffset
    }
  } finally {
    await log.close()
  }
  assert.deepEqual(inLog, Array.from({ length: inLog.length }, (_, i) => i), 'log holds 0..n in publish order')
  assert.ok(inLog.length > maxAcked, `log ends at seq ${inLog.length - 1}, before the last acked ${maxAcked}`)
})

// The broker routes QoS 1 messages before they are durable, so a *connected* persistent
// subscriber receives and acknowledges records the log has not made durable yet. Its cursor must
// not be persisted past the durable end (a crash may cut that tail, and the next records reuse its
// offsets): after the restart it resumes at or before where it was, with no gap, and every message
// the publisher got a PUBACK for reaches it (before or after the crash; duplicates are allowed).
test('a connected persistent subscriber resumes after SIGKILL without a gap and gets every PUBACKed message', async () => {
  const d = await tempDir('edge-crash-live')
  let e: EdgeProcess | undefined = await startEdge({ dataDir: d.path })
  try {
    const before: number[] = []
    const sub = mqtt.connect(e.url, { clientId: 'live-sub', clean: false, reconnectPeriod: 0 })
    clients.push(sub)
    sub.on('error', () => {})
    sub.on('message', (_t, payload) => { before.push(Number(payload.toString())) })
    await new Promise<void>((resolve) => sub.once('connect', () => { resolve() }))
    await sub.subscribeAsync(TOPIC, { qos: 1 })

    const pub = await startSeqPublisher(e.url, 'live-pub')
    const acked = pub.acked
    await waitFor(`${ACKS_BEFORE_KILL} PUBACKs`, () => acked.size >= ACKS_BEFORE_KILL && before.length > 0, 30_000)
    await e.kill()
    await waitFor('the clients to see the broker die', pub.broken)
    pub.client.end(true)
    sub.end(true)
    const maxAcked = Math.max(...acked)
    assert.deepEqual(before, Array.from({ length: before.length }, (_, i) => i), 'before the kill: 0..n in order')

    e = await startEdge({ dataDir: d.path })
    const after: number[] = []
    const back = mqtt.connect(e.url, { clientId: 'live-sub', clean: false, reconnectPeriod: 0 })
    clients.push(back)
    back.on('message', (_t, payload) => { after.push(Number(payload.toString())) })
    await waitFor(`delivery up to seq ${maxAcked}`, () => Math.max(before.length - 1, after.length > 0 ? after[after.length - 1] : -1) >= maxAcked, 30_000)
    await new Promise((resolve) => setTimeout(resolve, 200))
    back.end(true)
    if (after.length > 0) {
      const first = after[0]
      assert.ok(first <= before.length, `resumed at seq ${first}, after a gap: the subscriber had ${before.length} messages`)
      assert.deepEqual(after, Array.from({ length: after.length }, (_, i) => first + i), 'after the restart: consecutive, in order')
    }
    const got = new Set([...before, ...after])
    for (const seq of acked) assert.ok(got.has(seq), `acked seq ${seq} never delivered`)
  } finally {
    await e?.kill()
    await d.remove()
  }
})
