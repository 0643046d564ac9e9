// Officer console: availability, the agency's queue, and the interview: videos, the
// application record, ID stills, the blind decision (its draft kept on the server as the
// officer works, so a reload gives it back; once recorded, shown read-only), end, next.
// Ending the call ends the media, not the decision: an officer whose agency has not
// decided keeps the form (without the call) and the interview stays in their queue, under
// "Awaiting your decision", until they record it. The server says who still owes one.
import { csrfToken, say, t } from "./i18n.js";
import { openDevices } from "./devices.js";
import { Call, play, presence, showPeer, showSeats, stepSeats, wireControls } from "./call.js";

const $ = (id) => document.getElementById(id);
const ownSeat = document.body.dataset.seat;
const views = ["queue", "call", "after"];
let call = null;
let current = null; // the interview on screen
let poll = null;
let decided = false;
let callOver = false; // the interview on screen is decision-only: its call has ended
const DRAFT_DELAY_MS = 1000; // a save a second after the last change, not one per keystroke
let draftTimer = null;
let draftChanged = false; // the form holds what the server does not keep yet
let draftOffered = false; // the kept draft was offered to this interview's form

function show(view) {
  for (const name of views) $(`${name}-view`).hidden = name !== view;
  document.body.dataset.view = view;
}

async function api(path, { body, json = true, type = "application/json" } = {}) {
  const init = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": type, "X-CSRF-Token": csrfToken() },
    body: type === "application/json" ? JSON.stringify(body) : body,
  };
  const response = await fetch(path, init);
  const data = json ? await response.json() : null;
  if (!response.ok) throw new Error(data?.error?.message ?? String(response.status));
  return data;
}

// --- availability and the queue --------------------------------------------------

async function ensureCamera() {
  if (!call.stream) {
    call.stream = await openDevices();
    play(document.querySelector(".tile.self video"), call.stream, call);
  }
}

async function setAvailable(available) {
  const button = $("availability");
  try {
    if (available) await ensureCamera();
    call.send({ type: "available", available });
    button.setAttribute("aria-pressed", String(available));
    say(button, available ? "Mark me away" : "Mark me available");
    say($("availability-status"), available
      ? "You are available: the next applicant is sent to you."
      : "You are away: no interview will be sent to you.");
  } catch (error) {
    say($("availability-status"), "Your camera or microphone could not be started: {reason}", { reason: error.message });
  }
}

$("availability").addEventListener("click", () =>
  setAvailable($("availability").getAttribute("aria-pressed") !== "true"));

/** A row of one of the queue's tables: the interview, then `extra` cells, then `button`,
 * which runs `action` (its error shown under the queue). */
function interviewRow(interview, extra, button, action) {
  const tr = document.createElement("tr");
  for (const text of [interview.id, interview.application_id, t(interview.mode)]) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  tr.append(...extra);
  button.type = "button";
  button.addEventListener("click", async () => {
    if (button.disabled) return;
    button.disabled = true; // one request per click, not one per impatient click
    try {
      await action();
      $("queue-error").textContent = "";
    } catch (error) {
      $("queue-error").textContent = error.message;
    } finally {
      button.disabled = false;
    }
  });
  const td = document.createElement("td");
  td.append(button);
  tr.append(td);
  return tr;
}

function queueRow(interview) {
  const waiting = document.createElement("td");
  if (interview.waiting_seconds === null) say(waiting, "not in the waiting room yet");
  else say(waiting, "{minutes} min", { minutes: Math.floor(interview.waiting_seconds / 60) });
  const take = document.createElement("button");
  say(take, "Take");
  return interviewRow(interview, [waiting], take, async () => {
    await ensureCamera();
    await api(`/api/interviews/${encodeURIComponent(interview.id)}/take`, { body: {} });
    startInterview(interview.id);
  });
}

function awaitingRow(interview) {
  const open = document.createElement("button");
  say(open, "Open");
  return interviewRow(interview, [], open, async () => openDecision(interview.id));
}

function offeredRow(interview) {
  const officer = document.createElement("td");
  officer.textContent = interview.officer;
  const takeOver = document.createElement("button");
  say(takeOver, "Take over the decision");
  return interviewRow(interview, [officer], takeOver, async () => {
    await api(`/api/interviews/${encodeURIComponent(interview.id)}/take-decision`, { body: {} });
    openDecision(interview.id);
  });
}

function fillTable(id, rows, section = id) {
  $(id).tBodies[0].replaceChildren(...rows);
  $(section).hidden = rows.length === 0;
}

async function refreshQueue(resume = false) {
  if (document.body.dataset.view !== "queue") return;
  try {
    const data = await api("/api/officer/queue");
    if (resume && data.in_call) {
      // a reloaded console: back into the call this officer is seated in
      await ensureCamera();
      startInterview(data.in_call);
      return;
    }
    fillTable("queue", data.interviews.map(queueRow));
    fillTable("awaiting", (data.awaiting_decision ?? []).map(awaitingRow), "awaiting-section");
    fillTable("offered", (data.offered ?? []).map(offeredRow), "offered-section");
    if (data.interviews.length) say($("queue-status"), "{count} waiting for a {agency} officer.", { count: data.interviews.length, agency: data.agency });
    else say($("queue-status"), "Nobody is waiting.");
  } catch (error) {
    say($("queue-status"), "The queue could not be loaded: {reason}", { reason: error.message });
  }
}

// --- the interview ----------------------------------------------------------------


function showRecord(application) {
  const rows = [
    ["Name", `${application.given_names} ${application.surname}`],
    ["Date of birth", application.date_of_birth],
    ["Citizenship", application.citizenship],
    ["Program", application.program],
    ["Application type", t(application.application_type)],
    ["Applied on", application.applied_on],
    ["Card expiry", application.card_expiry ?? "—"],
    ["Application status", t(application.status)],
    ["Application", application.id],
  ];
  $("record").replaceChildren(...rows.flatMap(([term, value]) => {
    const dt = document.createElement("dt");
    say(dt, term);
    const dd = document.createElement("dd");
    dd.textContent = value;
    return [dt, dd];
  }));
}

function showStills(stills) {
  const box = $("stills");
  if (box.children.length === stills.length) return;
  // Fewer than shown: the interview is over and the server no longer keeps them.
  const forgotten = stills.length < box.children.length;
  box.replaceChildren(...stills.map((still) => {
    const img = document.createElement("img");
    img.src = `/api/interviews/${encodeURIComponent(current)}/stills/${still.number}`;
    img.alt = `ID ${still.number} (${still.agency})`;
    return img;
  }));
  if (stills.length) say($("stills-status"), "{count} ID still(s), seen by both officers.", { count: stills.length });
  else if (forgotten) say($("stills-status"), "The interview is over: its ID stills are no longer shown here (the session record keeps them).");
}

function reasonText(code) {
  // the form's own label for the code: its text is tagged, so it follows the language
  const input = [...document.querySelectorAll("#reasons input[name=reason]")].find((i) => i.value === code);
  return input?.closest("label").querySelector("[data-t]")?.dataset.t;
}

/** The officer's own agency's decision, read-only, once it is recorded. */
function showOwnDecision(data, target) {
  const box = $(target);
  const decision = data.decisions[document.body.dataset.agency];
  box.hidden = !decision;
  if (!decision) return;
  const verdict = document.createElement("dd");
  say(verdict, decision.verdict);
  const codes = document.createElement("dd");
  if (!decision.reason_codes.length) codes.textContent = "—";
  for (const code of decision.reason_codes) {
    const line = document.createElement("div");
    const text = document.createElement("span");
    const message = reasonText(code);
    if (message) say(text, message);
    line.append(Object.assign(document.createElement("code"), { textContent: code }), " ", text);
    codes.append(line);
  }
  const notes = document.createElement("dd");
  const lines = decision.notes ? decision.notes.split("\n") : ["—"];
  notes.append(...lines.flatMap((text, i) => (i ? [document.createElement("br"), text] : [text])));
  const by = document.createElement("dd");
  by.textContent = `${decision.decided_by}, ${new Date(decision.decided_at).toLocaleString()}`;
  const rows = [["Decision", verdict], ["Reason codes", codes], ["Notes", notes], ["Recorded by", by]];
  box.querySelector("dl").replaceChildren(...rows.flatMap(([term, value]) => {
    const dt = document.createElement("dt");
    say(dt, term);
    return [dt, value];
  }));
}

function showOutcome(data, target) {
  const box = $(target);
  box.replaceChildren();
  const line = (message, fields) => {
    const p = document.createElement("p");
    say(p, message, fields);
    box.append(p);
  };
  if (data.both_decided) {
    line("Both agencies have decided. Application status: {status}.", { status: t(data.application.status) });
    for (const [agency, decision] of Object.entries(data.decisions)) {
      line("{agency}: {verdict} {codes}", { agency, verdict: t(decision.verdict), codes: decision.reason_codes.join(" ") });
    }
  } else if (decided) {
    line("Your decision is recorded. The other agency's decision stays hidden until it is in.");
  }
}

async function refreshInterview() {
  if (!current) return;
  try {
    const data = await api(`/api/interviews/${encodeURIComponent(current)}`);
    showRecord(data.application);
    showStills(data.stills);
    showSeats(stepSeats(data.interview.mode, data.officers), data.officers);
    const ownAgency = document.body.dataset.agency;
    decided = ownAgency in data.decisions;
    if (decided) clearTimeout(draftTimer);
    if (!draftOffered) {
      draftOffered = true;
      // only into a form the officer has not started on since the page loaded
      if (data.draft && !decided && !draftChanged) restoreDraft(data.draft);
    }
    $("decision").hidden = decided;
    showOutcome(data, "outcome");
    showOwnDecision(data, "own-decision");
    return data;
  } catch (error) {
    $("outcome").textContent = error.message;
    return null;
  }
}

// --- the decision's draft ---------------------------------------------------------

function formState() {
  const form = new FormData($("decision"));
  return { verdict: form.get("verdict"), reason_codes: form.getAll("reason"), notes: form.get("notes") ?? "" };
}

function restoreDraft(draft) {
  for (const input of $("decision").querySelectorAll("input[name=verdict]")) input.checked = input.value === draft.verdict;
  for (const input of $("decision").querySelectorAll("input[name=reason]")) input.checked = draft.reason_codes.includes(input.value);
  $("notes").value = draft.notes;
  say($("draft-status"), "Your draft is back as you left it.");
}

/** Send the form as it stands, if it changed; keepalive lets it go out as the page goes. */
function saveDraft() {
  clearTimeout(draftTimer);
  draftTimer = null;
  if (!current || decided || !draftChanged) return;
  draftChanged = false;
  fetch(`/api/interviews/${encodeURIComponent(current)}/draft`, {
    method: "PUT",
    keepalive: true,
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    body: JSON.stringify(formState()),
  }).then(async (response) => {
    if (response.ok) {
      say($("draft-status"), "Draft kept: a reload gives it back.");
    } else if (response.status !== 409) { // 409: the decision is in; nothing to keep
      const data = await response.json().catch(() => null);
      draftChanged = true;
      say($("draft-status"), "Your draft could not be kept: {reason}", { reason: data?.error?.message ?? String(response.status) });
    }
  }, (error) => {
    draftChanged = true; // the next change or leaving the page tries again
    say($("draft-status"), "Your draft could not be kept: {reason}", { reason: error.message });
  });
}

function draftEdited() {
  draftChanged = true;
  clearTimeout(draftTimer);
  draftTimer = setTimeout(saveDraft, DRAFT_DELAY_MS);
}

$("decision").addEventListener("input", draftEdited);
$("decision").addEventListener("change", draftEdited);
window.addEventListener("pagehide", saveDraft);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") saveDraft();
});

/** The call view shows the call (videos, controls, End) or, once it is over, only what
 * the decision needs: the record, the ID stills and the form. */
function showCallOver(over) {
  callOver = over;
  $("live").hidden = over;
  $("end-actions").hidden = over;
  $("call-ended").hidden = !over;
}

/** A fresh call view for `interviewId`: nothing of the interview shown before. */
function openInterview(interviewId, over) {
  saveDraft(); // whatever is pending for the interview on screen before
  current = interviewId;
  decided = false;
  draftChanged = false;
  draftOffered = false;
  $("call-id").textContent = interviewId;
  $("decision").reset();
  $("decision").hidden = false;
  $("decision-error").textContent = "";
  $("draft-status").textContent = "";
  $("own-decision").hidden = true;
  $("outcome").replaceChildren();
  $("stills").replaceChildren();
  say($("stills-status"), "No ID still yet.");
  showCallOver(over);
  show("call");
  $("call-heading").focus();
  refreshInterview();
  clearInterval(poll);
  poll = setInterval(refreshInterview, 30000); // pushes ("updated") do the work; a slow safety net
}

function startInterview(interviewId) {
  for (const tile of document.querySelectorAll(".tile[data-seat]")) presence(tile.dataset.seat, "absent");
  for (const label of document.querySelectorAll(".tile [data-path]")) label.remove(); // the last call's
  showSeats(["applicant"]); // the other officer's tile once the interview says they are in this call
  openInterview(interviewId, false);
  call.join(interviewId);
}

/** An interview whose call is over and whose decision this officer is to record. */
function openDecision(interviewId) {
  openInterview(interviewId, true);
}

$("capture").addEventListener("click", async () => {
  const button = $("capture");
  const video = document.querySelector('.tile[data-seat="applicant"] video');
  if (!video.videoWidth) {
    say($("stills-status"), "The applicant's video is not showing yet.");
    return;
  }
  // one still per click: a second click while this one is sent does nothing
  button.disabled = true;
  try {
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    const jpeg = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
    await api(`/api/interviews/${encodeURIComponent(current)}/stills`, { body: jpeg, type: "image/jpeg" });
    refreshInterview();
  } catch (error) {
    $("stills-status").textContent = error.message;
  } finally {
    button.disabled = false;
  }
});

$("decision").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearTimeout(draftTimer); // the decision itself replaces the draft
  try {
    await api(`/api/interviews/${encodeURIComponent(current)}/decision`, { body: formState() });
    $("decision-error").textContent = "";
    draftChanged = false;
    const data = await refreshInterview();
    if (callOver) showAfter(data); // the call ended before: nothing is left to do here
    else $("end").focus();
  } catch (error) {
    $("decision-error").textContent = error.message;
    if (draftChanged) draftEdited(); // not recorded: the draft is still worth keeping
  }
});

$("end").addEventListener("click", () => call.send({ type: "end" }));

function showAfter(data) {
  clearInterval(poll);
  saveDraft();
  current = null;
  showCallOver(false);
  if (data) {
    showOutcome(data, "after-outcome");
    showOwnDecision(data, "after-own-decision");
  }
  show("after");
  $("after-heading").focus();
}

async function ended() {
  if (!current || callOver) return; // not in a call: nothing to hang up
  call.hangUp();
  saveDraft();
  const data = await refreshInterview();
  if (data?.awaiting_your_decision) {
    // no new applicant while this decision is owed: "Ready for the next applicant" after it
    if ($("availability").getAttribute("aria-pressed") === "true") setAvailable(false);
    showCallOver(true);
    $("call-heading").focus();
  } else {
    showAfter(data);
  }
}

$("back-to-queue").addEventListener("click", () => {
  clearInterval(poll);
  saveDraft();
  current = null;
  showCallOver(false);
  show("queue");
  $("queue-heading").focus();
  refreshQueue();
});

$("next").addEventListener("click", async () => {
  show("queue");
  $("queue-heading").focus();
  await setAvailable(true);
  refreshQueue();
});

/** Label a seat's tile with its connection path: "direct", or "relayed" through TURN (a
 * relayed participant's media takes a detour, which explains a lag or a drop). */
function showPath({ seat, path, protocol }) {
  const caption = document.querySelector(`.tile[data-seat="${seat}"] figcaption`);
  if (!caption) return;
  let label = caption.querySelector("[data-path]");
  if (!label) {
    label = document.createElement("span");
    label.classList.add("flag", "path");
    caption.append(label);
  }
  label.dataset.path = path;
  if (path !== "relayed") say(label, "direct connection");
  else if (protocol) say(label, "relayed connection ({protocol})", { protocol });
  else say(label, "relayed connection");
}

call = new Call(null, {
  message(message) {
    if (showPeer(message)) return;
    switch (message.type) {
      case "paired":
        startInterview(message.interview_id);
        break;
      case "ended":
        ended();
        break;
      case "peer_path":
        showPath(message);
        break;
      case "updated": // a decision or an ID still: reload the record (instead of polling)
        refreshInterview();
        break;
      case "error":
        (current ? $("outcome") : $("queue-status")).textContent = message.message;
        break;
    }
  },
  track(seat, stream) {
    const tile = document.querySelector(`.tile[data-seat="${seat}"]`);
    if (!tile || seat === ownSeat) return;
    play(tile.querySelector("video"), stream, call); // its label follows `joined` and `peer`
  },
  state(state) {
    $("reconnecting").hidden = state !== "reconnecting";
  },
  reopened() {
    if ($("availability").getAttribute("aria-pressed") === "true") setAvailable(true);
  },
});
// Once the socket is open, tell the server what the button says (away unless the officer
// has already pressed it while the page was connecting: forcing "away" undid that click).
call.open().then(() => setAvailable($("availability").getAttribute("aria-pressed") === "true"));
show("queue");
refreshQueue(true);
setInterval(refreshQueue, 5000);
wireControls(call);
