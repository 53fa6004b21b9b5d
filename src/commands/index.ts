// The subcommand table, in the order `cdc --help` lists them.
import { all, consume, relay, serve } from './long-running.ts'
import { migrate, snapshot, track, untrack } from './capture.ts'
import { redrive } from './redrive.ts'
import { status } from './status.ts'
import { healthcheck } from './healthcheck.ts'
import { config } from './config.ts'
export type { Command } from './command.ts'

export const commands = [serve, relay, consume, redrive, all, migrate, track, untrack, snapshot, status, config, healthcheck]
