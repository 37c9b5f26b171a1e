// Child for test/fault/commitlog-crash.test.ts: appends records with sequence numbers under
// flushPolicy interval, and writes each sequence number to stdout (synchronously) when its
// durable callback fires. The parent SIGKILLs it mid-stream.
// argv: <dir>
import { CommitLog } from '../../src/commitlog/index.js'
import { silentLogger } from '../../src/log/index.js'

const dir = process.argv[2] as string
const log = await CommitLog.open({
  dir, segmentBytes: 256 * 1024, flushPolicy: 'interval', flushIntervalMs: 5, maxRecordBytes: 4096,
  retentionBytes: 0, retentionMs: 0, log: silentLogger()
})
process.stdout.write('ready\n')

let seq = 0
const onDurable = (n: number) => (err: Error | null): void => {
  if (err !== null) { process.stderr.write(`error ${err.message}\n`); process.exit(3) }
  // stdout to a pipe is synchronous on Linux: the line is out before the next record is acked.
  process.stdout.write(`${n}\n`)
}
function burst (): void {
  for (let k = 0; k < 200; k++, seq++) {
    log.append({ topic: `dev/${seq % 50}/seq`, payload: Buffer.from(`seq-${seq}`), qos: 1, retain: false, clientId: 'crash-child' }, onDurable(seq))
  }
  setImmediate(burst)
}
burst()
