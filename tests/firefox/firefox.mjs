// Debian's firefox-esr driven over WebDriver BiDi, for the test drivers beside this file:
// their parameters, a fresh profile per run (trusting a test CA when given one), what the
// pages say went wrong, and the JSON lines they report on stdout.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import puppeteer from "puppeteer-core";

// Preferences every run needs; `prefs` in the parameters adds to them or overrides them.
export const PREFS = {
  // A camera and a microphone that produce a picture and a tone, and no prompt for them:
  // the page is allowed them as a person who clicks Allow is.
  "media.navigator.streams.fake": true,
  "media.navigator.permission.disabled": true,
  // Not "media.peerconnection.ice.loopback": Firefox leaves loopback addresses out of ICE,
  // but so does the server's aiortc (aioice never offers 127.0.0.1 or ::1), so a call with
  // a server on this machine pairs on the machine's other addresses either way; and the
  // page's host candidates stay hidden behind mDNS names, as for any applicant.
};

/** The parameters: one JSON argument, else the NEXUS_FIREFOX environment variable. */
export function parameters(defaults) {
  const text = process.argv[2] ?? process.env.NEXUS_FIREFOX;
  if (!text) fail("give the parameters as one JSON argument (or in NEXUS_FIREFOX)");
  let given;
  try {
    given = JSON.parse(text);
  } catch (error) {
    fail(`the parameters are not JSON: ${error.message}`);
  }
  return { ...defaults, ...given, timeouts: { ...defaults.timeouts, ...given.timeouts } };
}

/** One line of JSON on stdout: what the Python side reads. */
export function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

export function fail(message) {
  emit({ error: message });
  process.exit(2);
}

/** A new profile directory; with `caFile`, its NSS database trusts that CA for servers
 * (the "C" flag) beside Firefox's own roots, as an administrator's import would. */
function profile(caFile) {
  const directory = mkdtempSync(path.join(os.tmpdir(), "nexus-firefox-"));
  if (caFile) {
    const database = `sql:${directory}`;
    execFileSync("certutil", ["-N", "--empty-password", "-d", database]);
    execFileSync("certutil", ["-A", "-n", "NEXUS test CA", "-t", "C,,", "-i", caFile, "-d", database]);
  }
  return directory;
}

/** Firefox, its page, and the errors that page reports. */
export class Firefox {
  static async launch({ firefox, headless, prefs, caFile }) {
    const directory = profile(caFile);
    try {
      const browser = await puppeteer.launch({
        browser: "firefox",
        executablePath: firefox,
        headless,
        userDataDir: directory,
        extraPrefsFirefox: { ...PREFS, ...prefs },
      });
      // A new tab: the one Firefox starts with never has the focus in headless mode, so
      // its fields get no focus events and the date field's parts ignore what is typed.
      const page = await browser.newPage();
      return new Firefox(browser, page, directory);
    } catch (error) {
      rmSync(directory, { recursive: true, force: true });
      throw error;
    }
  }

  constructor(browser, page, directory) {
    this.browser = browser;
    this.page = page;
    this.directory = directory;
    this.pageErrors = [];
    this.consoleErrors = [];
    page.on("pageerror", (error) => this.pageErrors.push(String(error?.message ?? error)));
    page.on("console", (message) => {
      if (message.type() === "error") this.consoleErrors.push(message.text());
    });
  }

  errors() {
    return { pageErrors: this.pageErrors, consoleErrors: this.consoleErrors };
  }

  /** Close Firefox and remove its profile, once no process of it can write there. */
  async close() {
    const firefox = this.browser.process();
    try {
      await this.browser.close(); // which says nothing if Firefox would not close
    } finally {
      if (firefox && firefox.exitCode === null && firefox.signalCode === null) {
        const exited = new Promise((resolve) => firefox.once("exit", resolve));
        const late = setTimeout(() => {
          try {
            process.kill(-firefox.pid, "SIGKILL"); // its group: puppeteer starts it detached
          } catch {
            // gone meanwhile
          }
        }, 10_000);
        await exited;
        clearTimeout(late);
      }
      rmSync(this.directory, { recursive: true, force: true });
    }
  }
}

/** Run `body(firefox)` in a launched Firefox; a failure is reported as an error line
 * (with the step it happened in and the page's errors) and a non-zero exit. */
export async function run(options, body) {
  let firefox = null;
  const progress = { step: "launch" };
  let failed = null;
  try {
    firefox = await Firefox.launch(options);
    // its process id: should this script be killed, its caller ends Firefox by that
    emit({ step: "started", version: await firefox.browser.version(), pid: firefox.browser.process()?.pid });
    await body(firefox, progress);
  } catch (error) {
    failed = error;
  }
  if (failed) {
    emit({
      error: `${progress.step}: ${failed?.message ?? failed}`,
      step: progress.step,
      ...(firefox ? firefox.errors() : {}),
    });
  }
  if (firefox) await firefox.close().catch(() => {});
  process.exit(failed ? 1 : 0);
}
