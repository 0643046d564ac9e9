// The operator console's booking run: while one runs, its status region is refreshed from
// the server every few seconds (a screen reader hears the change, politely), and polling
// stops once the run has ended. Without scripts, a reload shows the same.
const POLL_MS = 2000;
const region = document.getElementById("booking-job");

async function refresh() {
  let status;
  try {
    const response = await fetch("/operator/schedule/status", { headers: { Accept: "application/json" } });
    if (!response.ok) return; // signed out or refused: a reload says why
    status = await response.json();
  } catch {
    return; // the server is away: a reload shows the run once it is back
  }
  if (status.state === null) return;
  if (region.textContent.trim() !== status.text) region.textContent = status.text;
  region.dataset.state = status.state;
  if (status.state === "running") setTimeout(refresh, POLL_MS);
}

if (region && region.dataset.state === "running") setTimeout(refresh, POLL_MS);
