// Debian's Chromium, driven by playwright-core (no browser download), with the flags CI needs; for
// the UI tests and the UI benchmark alike.

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
];
