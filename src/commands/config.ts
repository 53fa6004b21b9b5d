// config print: the configuration cdc would run with (file + environment + defaults), secrets redacted.
import { redactConfig } from '../config.ts'
import { UsageError } from '../errors.ts'
import type { Command } from './command.ts'

export const config: Command = {
  name: 'config',
  summary: 'print the effective configuration (file, CDC_* environment, defaults) with secrets redacted',
  usage: 'print',
  async run({ rt, positionals }) {
    const [action, ...rest] = positionals
    if (action !== 'print') throw new UsageError(`${action ?? '<action>'}: expected print`, config.name)
    if (rest.length) throw new UsageError(`${rest[0]}: unexpected argument`, config.name)
    console.log(JSON.stringify(redactConfig(rt.config), null, 2))
    return 0
  },
}
