// Composition root of `tributary edge` (placeholder until the broker lands).
import { describeFlags, loadConfig } from '../src/config/index.js'
import { edgeSchema } from '../src/config/edge.js'

export async function main (argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (argv.includes('--help')) {
    console.log(`usage: tributary edge [--config FILE] [flags]\n\n${describeFlags(edgeSchema)}`)
    return 0
  }
  const config = loadConfig(edgeSchema, { argv, env })
  console.log(JSON.stringify(config))
  return 0
}
