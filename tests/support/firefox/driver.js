#!/usr/bin/env node
// Drives Debian's Firefox ESR, headless, over WebDriver BiDi (puppeteer-core), for the Python
// tests (tests/support/firefox.py): one JSON command a line on stdin, one JSON reply a line on
// stdout. Nothing is ever downloaded: puppeteer-core brings no browser, and the one it starts
// is FIREFOX (default /usr/bin/firefox-esr).
//
//   node driver.js PROFILE_DIR
//
// On start it prints {"ready": true, "version": "..."} once the browser is up, or
// {"ready": false, "error": "..."} and exits. Then, for each {"id": N, "cmd": ..., ...}:
//   {"cmd": "goto", "url": URL}                      load a page in the one tab
//   {"cmd": "click", "selector": CSS}                click an element
//   {"cmd": "evaluate", "expression": JS}            its value (a promise is awaited)
//   {"cmd": "waitFor", "expression": JS, "timeoutMs": N}
//                                                    until the expression is truthy (every
//                                                    100 ms, in the page); its value
//   {"cmd": "close"}                                 close the browser and exit
// the reply is {"id": N, "ok": true, "value": ...} or {"id": N, "ok": false, "error": "..."}.
// The page's console comes as {"console": TYPE, "text": "..."} and its uncaught errors as
// {"pageError": "..."}, between replies. End of stdin (the test process gone) also closes the
// browser.
"use strict";

const readline = require("readline");
const puppeteer = require("puppeteer-core");

const profileDir = process.argv[2];
const executablePath = process.env.FIREFOX || "/usr/bin/firefox-esr";

if (!profileDir) {
  console.error("usage: node driver.js PROFILE_DIR");
  process.exit(2);
}

// Prefs on top of puppeteer's own test defaults (which already turn off updates, safe
// browsing, health reports, add-on and blocklist fetches, and the OpenH264 download).
const PREFS = {
  // A fake camera and microphone (a test pattern and a tone), granted without a prompt.
  "media.navigator.streams.fake": true,
  "media.navigator.permission.disabled": true,
  // Firefox gathers host candidates for every interface only while the page holds a camera
  // or microphone permission, and fake devices do not count: without these it gathers for
  // the default route alone, and the suite's namespace has none ("failed to find default
  // addresses").
  "permissions.default.camera": 1,
  "permissions.default.microphone": 1,
  // The namespace has nothing but loopback: let ICE use it, with plain addresses (no mDNS
  // names, which the kiosk could not resolve).
  "media.peerconnection.ice.loopback": true,
  "media.peerconnection.ice.obfuscate_host_addresses": false,
  "media.peerconnection.ice.default_address_only": false,
  "media.peerconnection.ice.no_host": false,
  "media.autoplay.default": 0, // play the remote media without a user gesture
  // No background traffic at all (the namespace has no route out anyway).
  "app.update.auto": false,
  "app.update.enabled": false,
  "app.normandy.enabled": false,
  "app.shield.optoutstudies.enabled": false,
  "browser.discovery.enabled": false,
  "browser.ping-centre.telemetry": false,
  "browser.region.network.url": "",
  "browser.region.update.enabled": false,
  "browser.topsites.contile.enabled": false,
  "browser.newtabpage.activity-stream.feeds.telemetry": false,
  "browser.newtabpage.activity-stream.telemetry": false,
  "datareporting.healthreport.uploadEnabled": false,
  "dom.push.connection.enabled": false,
  "extensions.blocklist.enabled": false,
  "extensions.systemAddon.update.enabled": false,
  "identity.fxaccounts.enabled": false,
  "media.gmp-gmpopenh264.autoupdate": false,
  "media.gmp-manager.url": "",
  "messaging-system.rsexperimentloader.enabled": false,
  "network.captive-portal-service.enabled": false,
  "network.connectivity-service.enabled": false,
  "network.dns.disablePrefetch": true,
  "network.prefetch-next": false,
  "network.predictor.enabled": false,
  "network.trr.mode": 5, // no DNS over HTTPS
  "security.OCSP.enabled": 0,
  "toolkit.telemetry.enabled": false,
  "toolkit.telemetry.unified": false,
  "toolkit.telemetry.server": "",
  // Remote settings (blocklists, certificate revocations...): the same dummy server Firefox's
  // own remote agent sets, which makes no request at all. A release build honours it only
  // with MOZ_REMOTE_SETTINGS_DEVTOOLS=1 (set below); else it looks up its real server.
  "services.settings.server": "data:,#remote-settings-dummy/v1",
};

const write = (message) => process.stdout.write(JSON.stringify(message) + "\n");

async function main() {
  process.env.MOZ_REMOTE_SETTINGS_DEVTOOLS = "1"; // Firefox inherits it: see the last pref
  let browser;
  try {
    browser = await puppeteer.launch({
      browser: "firefox",
      protocol: "webDriverBiDi",
      executablePath,
      headless: true,
      userDataDir: profileDir,
      extraPrefsFirefox: PREFS,
      dumpio: false,
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
    });
  } catch (err) {
    write({ ready: false, error: String(err && err.stack || err) });
    process.exit(1);
  }
  const pages = await browser.pages();
  const page = pages.length ? pages[0] : await browser.newPage();
  page.on("console", (m) => write({ console: m.type(), text: m.text() }));
  page.on("pageerror", (e) => write({ pageError: String(e && e.message || e) }));
  const proc = browser.process();
  write({ ready: true, version: await browser.version(), pid: proc ? proc.pid : null });

  let closing = null;
  const close = () => {
    if (!closing) closing = browser.close().catch(() => {}).then(() => process.exit(0));
    return closing;
  };

  const commands = {
    goto: (c) => page.goto(c.url, { waitUntil: "load" }).then(() => null),
    click: (c) => page.click(c.selector).then(() => null),
    evaluate: (c) => page.evaluate(c.expression),
    waitFor: (c) => page.waitForFunction(c.expression, { polling: 100, timeout: c.timeoutMs })
      .then((handle) => handle.jsonValue()),
  };

  const lines = readline.createInterface({ input: process.stdin });
  lines.on("line", async (line) => {
    let c;
    try {
      c = JSON.parse(line);
    } catch (err) {
      write({ ok: false, error: `not JSON: ${line}` });
      return;
    }
    if (c.cmd === "close") {
      write({ id: c.id, ok: true, value: null });
      await close();
      return;
    }
    const run = commands[c.cmd];
    if (!run) {
      write({ id: c.id, ok: false, error: `unknown command ${c.cmd}` });
      return;
    }
    try {
      const value = await run(c);
      write({ id: c.id, ok: true, value: value === undefined ? null : value });
    } catch (err) {
      write({ id: c.id, ok: false, error: String(err && err.message || err) });
    }
  });
  lines.on("close", close);
}

main();
