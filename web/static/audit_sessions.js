// Audit console, the list: sessions still being verified in the background get their
// status filled in as the console finishes them, without reloading the page (a reload
// would write another "list" to the access log).
import { say, t } from "./i18n.js";

const POLL_MS = 2000;
const notice = document.getElementById("checking");
const chosenStatus = new URLSearchParams(location.search).get("status") || "";

function pending() {
  return document.querySelectorAll('#sessions tr[data-status="checking"]');
}

async function refresh() {
  const ids = [...pending()].map((row) => `id=${encodeURIComponent(row.dataset.session)}`);
  const response = await fetch(`/api/statuses?${ids.join("&")}`);
  if (!response.ok) return pending().length;
  const { statuses } = await response.json();
  for (const row of pending()) {
    const found = statuses[row.dataset.session];
    if (!found || found.status === "checking") continue;
    const cell = row.lastElementChild;
    row.dataset.status = found.status;
    row.hidden = Boolean(chosenStatus) && found.status !== chosenStatus; // the filter applies now
    cell.className = `status-${found.status}`;
    cell.textContent = t(found.status) + (found.problem ? `: ${found.problem}` : "");
  }
  const left = pending().length;
  if (left) say(notice, "Still checking {count} of these sessions (hashing their media); their status appears below when done.", { count: left });
  else say(notice, "Every session listed has been checked.");
  return left;
}

async function poll() {
  let left = 1;
  try {
    left = await refresh();
  } finally {
    if (left) setTimeout(poll, POLL_MS);
  }
}

setTimeout(poll, POLL_MS);
