// What this executable is: version, commit and build date. `scripts/build.sh` bakes the commit and date in with
// `bun build --define`; run from source, the commit comes from git and the date is "source".
import pkg from '../package.json' with { type: 'json' }

declare const CDC_BUILD_COMMIT: string | undefined
declare const CDC_BUILD_DATE: string | undefined

export interface BuildInfo {
  version: string
  commit: string
  date: string
}

let cached: BuildInfo | undefined

export function buildInfo(): BuildInfo {
  if (cached) return cached
  const commit = typeof CDC_BUILD_COMMIT === 'string' ? CDC_BUILD_COMMIT : gitCommit()
  const date = typeof CDC_BUILD_DATE === 'string' ? CDC_BUILD_DATE : 'source'
  return (cached = { version: pkg.version, commit, date })
}

function gitCommit() {
  try {
    const out = Bun.spawnSync(['git', 'rev-parse', '--short=12', 'HEAD'], { cwd: import.meta.dir, stderr: 'ignore' })
    return out.exitCode === 0 ? out.stdout.toString().trim() : 'unknown'
  } catch {
    return 'unknown'
  }
}
