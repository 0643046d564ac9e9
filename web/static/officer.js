// Officer console: availability toggle and the agency's queue (refreshed every 5 s).
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const toggle = document.getElementById("availability");
const table = document.getElementById("queue");
const status = document.getElementById("queue-status");

async function send(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error.message);
  return data;
}

toggle.addEventListener("click", async () => {
  const wanted = toggle.getAttribute("aria-pressed") !== "true";
  try {
    const { available } = await send("/api/officer/availability", { available: wanted });
    toggle.setAttribute("aria-pressed", String(available));
    toggle.textContent = available ? "Available" : "Away";
  } catch (error) {
    status.textContent = error.message;
  }
});

function row(interview) {
  const tr = document.createElement("tr");
  for (const text of [interview.id, interview.application_id, interview.mode, interview.window_start]) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  const take = document.createElement("button");
  take.type = "button";
  take.textContent = "Take";
  take.addEventListener("click", async () => {
    try {
      await send(`/api/interviews/${encodeURIComponent(interview.id)}/take`, {});
      status.textContent = `You took ${interview.id}.`;
      refresh();
    } catch (error) {
      status.textContent = error.message;
    }
  });
  const td = document.createElement("td");
  td.append(take);
  tr.append(td);
  return tr;
}

async function refresh() {
  try {
    const response = await fetch("/api/officer/queue");
    const data = await response.json();
    if (!response.ok) throw new Error(data.error.message);
    table.tBodies[0].replaceChildren(...data.interviews.map(row));
    table.hidden = data.interviews.length === 0;
    status.textContent = data.interviews.length
      ? `${data.interviews.length} waiting for a ${data.agency} officer.`
      : "Nobody is waiting.";
  } catch (error) {
    status.textContent = `The queue could not be loaded: ${error.message}`;
  }
}

refresh();
setInterval(refresh, 5000);
