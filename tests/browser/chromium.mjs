// Debian's Chromium, headless, as every browser test starts it: flags that keep it off the
// network this machine does not have, and with WSLOOP_TLS=1 the
// test certificate accepted.
import { chromium } from 'playwright-core';

export const TLS = process.env.WSLOOP_TLS === '1';

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--no-first-run', ...(TLS ? ['--ignore-certificate-errors'] : [])],
  });
}
