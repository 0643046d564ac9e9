// The applicant in Firefox, as a person goes: the invitation link, a language, the device
// check, the date of birth typed into the date field, consent, the call with both
// officers, and the end of it. One JSON line on stdout per milestone:
//   {"step":"started","version"}   {"step":"language","lang"}
//   {"step":"devices","checks":{name: "true"|"false"},"pathHelp"}
//   {"step":"identity","typed","value","locale"}   {"step":"consent","heading","lang"}
//   {"step":"call"}   {"step":"in-call","selected","videos"}
//   {"step":"done","heading","pageErrors","consoleErrors"}
// or {"error","step","pageErrors","consoleErrors"} and a non-zero exit.
//
// Parameters (one JSON argument, or NEXUS_FIREFOX): base, token (required); language;
// dateOfBirth (ISO, what the field must hold once typed); typed (the keys typed into the
// date field; by default its digits in the order the browser's locale shows the fields);
// forceRelay (the page's connections get iceTransportPolicy "relay", as a policy might
// force); checks (the device-check lines to wait for); seats (the remote videos that must
// play); prefs (more Firefox preferences); caFile (a CA certificate the profile trusts);
// firefox (its executable); headless; timeouts (ms: step, call, done).
import { emit, fail, parameters, run } from "./firefox.mjs";

const options = parameters({
  firefox: "/usr/bin/firefox-esr",
  headless: true,
  prefs: {},
  caFile: null,
  language: "en",
  dateOfBirth: "1980-05-17",
  typed: null,
  forceRelay: false,
  checks: ["browser", "camera", "microphone", "connection"],
  seats: ["cbsa", "cbp"],
  timeouts: { step: 30_000, call: 90_000, done: 60_000 },
});
if (!options.base || !options.token) fail("the parameters need base and token");

// Wraps the page's RTCPeerConnection: keeps each one to read its stats, and (when asked)
// forces relay-only ICE.
const RECORD_PEER_CONNECTIONS = (forceRelay) => {
  const Original = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (config = {}, ...rest) {
    const chosen = forceRelay ? { ...config, iceTransportPolicy: "relay" } : config;
    const pc = new Original(chosen, ...rest);
    window.__pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Original.prototype;
};

// The newest connection's selected candidate pair. Firefox has no "transport" stats to
// name it: its candidate pair says `selected` itself.
const SELECTED_PAIR = async () => {
  const pc = window.__pcs[window.__pcs.length - 1];
  if (!pc) return null;
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
  });
  stats.forEach((r) => {
    if (!pair && r.type === "candidate-pair" && (r.selected || (r.nominated && r.state === "succeeded"))) pair = r;
  });
  const local = pair && stats.get(pair.localCandidateId);
  const remote = pair && stats.get(pair.remoteCandidateId);
  return {
    policy: pc.getConfiguration().iceTransportPolicy,
    type: local?.candidateType ?? null,
    protocol: local?.relayProtocol ?? null,
    transport: local?.protocol ?? null,
    address: local?.address ?? null,
    url: local?.url ?? null,
    remoteType: remote?.candidateType ?? null,
    remoteAddress: remote?.address ?? null,
  };
};

// Each seat's video: its size, and whether its time advances (it really plays).
const PLAYING = async (seats) => {
  const sample = () =>
    seats.map((seat) => {
      const video = document.querySelector(`.tile[data-seat="${seat}"] video`);
      return { seat, width: video?.videoWidth ?? 0, time: video?.currentTime ?? 0 };
    });
  const first = sample();
  await new Promise((resolve) => setTimeout(resolve, 700));
  const second = sample();
  return first.map((one, i) => ({ ...one, advanced: second[i].time > one.time }));
};

// The digits of an ISO date in the order this browser's locale shows a date's fields.
const DIGITS_IN_LOCALE_ORDER = (iso) => {
  const [year, month, day] = iso.split("-");
  const parts = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "2-digit", day: "2-digit" })
    .formatToParts(new Date(Date.UTC(2000, 0, 2)));
  const digits = { year, month, day };
  return parts.filter((p) => p.type in digits).map((p) => digits[p.type]).join("");
};

const visible = (page, selector, timeout) => page.waitForSelector(selector, { visible: true, timeout });
const text = (page, selector) => page.$eval(selector, (e) => e.textContent.trim());

async function devices(page, progress) {
  progress.step = "devices";
  const { step } = options.timeouts;
  await page.waitForSelector("#devices-continue:not([disabled])", { timeout: step });
  for (const check of options.checks) {
    await page.waitForSelector(`[data-check="${check}"][data-ok]`, { timeout: step });
  }
  const state = await page.evaluate(() => {
    const checks = {};
    for (const line of document.querySelectorAll("[data-check][data-ok]")) {
      checks[line.dataset.check] = line.dataset.ok;
    }
    const help = document.getElementById("path-help");
    return { checks, pathHelp: help && !help.hidden ? help.textContent.trim() : null };
  });
  emit({ step: "devices", ...state });
  await page.click("#devices-continue");
}

/** Click the date field's first part and type the date, key by key, as a person does. */
async function dateOfBirth(page, progress) {
  progress.step = "identity";
  const input = await visible(page, "#date_of_birth", options.timeouts.step);
  const box = await input.boundingBox();
  await page.mouse.click(box.x + 10, box.y + box.height / 2);
  const focused = await page.evaluate(() => document.activeElement?.id);
  if (focused !== "date_of_birth") throw new Error(`the click focused ${focused}, not the date field`);
  const locale = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().locale);
  const typed = options.typed ?? (await page.evaluate(DIGITS_IN_LOCALE_ORDER, options.dateOfBirth));
  await page.keyboard.type(typed, { delay: 60 });
  const value = await input.evaluate((e) => e.value);
  emit({ step: "identity", typed, value, locale });
  if (value !== options.dateOfBirth) {
    throw new Error(`typing ${typed} left the date field holding "${value}", not ${options.dateOfBirth}`);
  }
  await Promise.all([
    page.waitForNavigation({ timeout: options.timeouts.step }),
    page.click("#step-identity button[type=submit]"),
  ]);
  const refused = await page.$("#step-identity [role=alert]");
  if (refused) throw new Error(`the date of birth was refused: ${await text(page, "#step-identity [role=alert]")}`);
}

async function consent(page, progress) {
  progress.step = "consent";
  await visible(page, "#step-consent", options.timeouts.step);
  const heading = await text(page, "#consent-heading");
  const lang = await page.evaluate(() => document.documentElement.lang);
  emit({ step: "consent", heading, lang });
  await page.click("#consent-check");
  if (!(await page.$eval("#consent-check", (e) => e.checked))) throw new Error("the consent box did not tick");
  await page.click("#consent-give");
}

async function call(page, progress) {
  progress.step = "call";
  await visible(page, "#step-call", options.timeouts.call);
  emit({ step: "call" });
  progress.step = "in-call";
  const until = Date.now() + options.timeouts.call;
  let videos = [];
  for (;;) {
    videos = await page.evaluate(PLAYING, options.seats);
    if (videos.every((v) => v.width > 0 && v.advanced)) break;
    if (Date.now() > until) throw new Error(`not every officer's video plays: ${JSON.stringify(videos)}`);
  }
  emit({ step: "in-call", selected: await page.evaluate(SELECTED_PAIR), videos });
}

await run(options, async (firefox, progress) => {
  const { page } = firefox;
  await page.evaluateOnNewDocument(RECORD_PEER_CONNECTIONS, options.forceRelay);
  progress.step = "language";
  const response = await page.goto(`${options.base}/i/${options.token}`, { timeout: options.timeouts.step });
  if (!response?.ok()) throw new Error(`the invitation link answered ${response?.status()}`);
  await page.click(`#step-language button[data-language="${options.language}"]`);
  await page.waitForFunction((l) => document.documentElement.lang === l, { timeout: options.timeouts.step }, options.language);
  emit({ step: "language", lang: options.language });
  await devices(page, progress);
  await dateOfBirth(page, progress);
  await consent(page, progress);
  await call(page, progress);
  progress.step = "done";
  await visible(page, "#step-done", options.timeouts.done);
  emit({ step: "done", heading: await text(page, "#step-done h1"), ...firefox.errors() });
});
