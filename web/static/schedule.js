// The interview's times in the browser's own time zone and the page's language. The
// server writes each sentence with its times in UTC (for a page without scripts) and
// marks the element: data-local-times, and data-time-<field>="<ISO 8601>" per time.
import { onLanguageChange, say } from "./i18n.js";

const LOCALES = { en: "en-CA", fr: "fr-CA" };

export function localTime(iso) {
  const language = document.documentElement.lang;
  return new Intl.DateTimeFormat(LOCALES[language] || language, {
    weekday: "long",
    year: "numeric",
    month: "long",
    day: "numeric",
    hour: "numeric",
    minute: "2-digit",
    timeZoneName: "short",
  }).format(new Date(iso));
}

export function showTimes(root = document) {
  for (const element of root.querySelectorAll("[data-local-times]")) {
    const text = element.querySelector("[data-t]");
    const fields = text.dataset.tFields ? JSON.parse(text.dataset.tFields) : {};
    for (const [key, iso] of Object.entries(element.dataset)) {
      if (key.startsWith("time") && key.length > 4) fields[key[4].toLowerCase() + key.slice(5)] = localTime(iso);
    }
    say(text, text.dataset.t, fields);
  }
}

onLanguageChange(() => showTimes());
showTimes();
