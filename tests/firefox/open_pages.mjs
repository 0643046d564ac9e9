// Firefox opens each of `urls` in turn and says how it went, one JSON line each:
//   {"step":"opened","url","status","title"} when the page loaded,
//   {"step":"refused","url","reason","document"} when Firefox would not show it (an
//   untrusted certificate: its error page, or the navigation's error).
// Parameters as for applicant.mjs: urls (required), caFile, prefs, firefox, headless,
// timeouts.step.
import { emit, fail, parameters, run } from "./firefox.mjs";

const options = parameters({
  firefox: "/usr/bin/firefox-esr",
  headless: true,
  prefs: {},
  caFile: null,
  urls: [],
  timeouts: { step: 30_000 },
});
if (!options.urls.length) fail("the parameters need urls");

await run(options, async ({ page }, progress) => {
  for (const url of options.urls) {
    progress.step = `open ${url}`;
    let response;
    try {
      response = await page.goto(url, { timeout: options.timeouts.step });
    } catch (error) {
      // the navigation's error names Firefox's own code: a certificate's (SEC_ERROR_…,
      // MOZILLA_PKIX_ERROR_…, SSL_ERROR_…), else the network's (NS_ERROR_…)
      const code = error.message.match(/\b(SEC|MOZILLA_PKIX|SSL)_ERROR_\w+/) ?? error.message.match(/\bNS_ERROR_\w+/);
      emit({ step: "refused", url, reason: code ? code[0] : error.message, document: page.url() });
      continue;
    }
    const document = await page.evaluate(() => document.documentURI);
    if (!document.startsWith(url)) {
      // Firefox shows its own error page in the tab instead of the site's
      emit({ step: "refused", url, reason: "error page", document });
      continue;
    }
    emit({ step: "opened", url, status: response?.status() ?? null, title: await page.title() });
  }
});
