// The subcommand table, in the order `cdc --help` lists them.
import { all, consume, relay, serve } from './long-running.ts'
import { migrate, snapshot, track, untrack } from './capture.ts'
import { discard, redrive } from './redrive.ts'
import { status } from './status.ts'
import { healthcheck } from './healthcheck.ts'
import { config } from './config.ts'
import { backfill, pruneHistoryCommand } from './history.ts'
import { replay } from './replay.ts'
export type { Command } from './command.ts'

export const commands = [serve, relay, consume, redrive, discard, all, migrate, track, untrack, snapshot, status, config, healthcheck, backfill, pruneHistoryCommand, replay]
