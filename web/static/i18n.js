// Language for scripts: t() translates, and pages holding live state (a device check, a
// call) switch language in place instead of reloading. English text is the message id.
const form = document.getElementById("language-form");
let messages = JSON.parse(document.getElementById("messages").textContent);
const listeners = new Set();

export function t(message, fields = {}) {
  const text = messages[message] || message;
  return text.replace(/\{(\w+)\}/g, (all, name) => (name in fields ? String(fields[name]) : all));
}

/** Show `message` (with `fields`) in `element`, and keep it translated on a switch. */
export function say(element, message, fields = {}) {
  element.dataset.t = message;
  if (Object.keys(fields).length) element.dataset.tFields = JSON.stringify(fields);
  else delete element.dataset.tFields;
  element.textContent = t(message, fields);
}

export function onLanguageChange(listener) {
  listeners.add(listener);
}

export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]').content;
}

function apply(language, next) {
  messages = next;
  document.documentElement.lang = language;
  for (const element of document.querySelectorAll("[data-t]")) {
    const fields = element.dataset.tFields ? JSON.parse(element.dataset.tFields) : {};
    element.textContent = t(element.dataset.t, fields);
  }
  for (const element of document.querySelectorAll("[data-t-label]")) {
    element.setAttribute("aria-label", t(element.dataset.tLabel));
  }
  if (document.body.dataset.title) document.title = t(document.body.dataset.title);
  for (const button of form.querySelectorAll("button[name=language]")) {
    button.setAttribute("aria-pressed", String(button.value === language));
  }
  for (const listener of listeners) listener(language);
}

export async function switchLanguage(language) {
  const response = await fetch("/api/language", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    body: JSON.stringify({ language }),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error.message);
  apply(data.language, data.messages);
}

if (form && document.body.dataset.liveLanguage !== undefined) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const language = event.submitter.value;
    switchLanguage(language).catch(() => {
      // Could not switch in place: fall back to the plain form (a reload).
      form.append(Object.assign(document.createElement("input"), { type: "hidden", name: "language", value: language }));
      HTMLFormElement.prototype.submit.call(form);
    });
  });
}
