// Browser tests of the console: Chromium (installed by install-chromium.sh when missing) driven by playwright-core,
// against a real `serve` (Bun.serve on a free port) with the real relay and consumer running in-process.
import { chromium, type Browser, type Page } from 'playwright-core'
import { mkdirSync } from 'node:fs'
import { ROOT } from '../support/env.ts'

export const ARTIFACTS = `${ROOT}test/artifacts/ui`
export const SIZES = { desktop: { width: 1280, height: 900 }, phone: { width: 390, height: 844 } } as const

export async function launchBrowser(): Promise<Browser> {
  const install = Bun.spawnSync(['bash', `${ROOT}test/ui/install-chromium.sh`], { stdout: 'inherit', stderr: 'inherit' })
  if (install.exitCode !== 0) throw new Error('chromium could not be installed (test/ui/install-chromium.sh)')
  mkdirSync(ARTIFACTS, { recursive: true })
  // Playwright gives each launch a new empty profile directory (it refuses --user-data-dir among the args); the
  // flags keep Chromium from calling out of the machine's closed network.
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
}

/** Both sizes of the current page as artifacts; fails when the page scrolls sideways at that width. */
export async function screenshots(page: Page, name: string): Promise<void> {
  for (const [size, viewport] of Object.entries(SIZES)) {
    await page.setViewportSize(viewport)
    const overflow = (await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth')) as number
    if (overflow > 0) throw new Error(`${name} scrolls sideways by ${overflow}px at ${size} width`)
    await page.screenshot({ path: `${ARTIFACTS}/${name}-${size}.png`, fullPage: true })
  }
  await page.setViewportSize(SIZES.desktop)
}

export const sha256 = (token: string) => new Bun.CryptoHasher('sha256').update(token).digest('hex')
