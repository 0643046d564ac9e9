// The applicant's interview page: consent -> waiting room -> call -> completion.
// A reload lands in the right step (the server says which); a dropped call rejoins.
import { csrfToken, say } from "./i18n.js";
import { openDevices, showHelp } from "./devices.js";
import { Call, play, showPeer, showSeats, stepSeats, wireControls } from "./call.js";

const interviewId = document.body.dataset.interview;
const $ = (id) => document.getElementById(id);
const steps = ["consent", "devices", "waiting", "call", "done", "error"];
let call = null;

function show(step) {
  $("loading").hidden = true;
  for (const name of steps) $(`step-${name}`).hidden = name !== step;
  $(`step-${step}`).querySelector("h1").focus();
  document.body.dataset.step = step;
}

function fail(message) {
  say($("problem-text"), message);
  show("error");
}

async function api(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    body: JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error.message);
  return data;
}

/** The tiles of this step's call only, labelled with the officers' names. */
function label({ mode, officers }) {
  showSeats(stepSeats(mode, officers), officers);
}


// estimated_wait_seconds: 0 when officers are free (the call is about to start); null when
// no officer the interview needs is on duty, so that no figure would mean anything.
function waiting({ position, estimated_wait_seconds: seconds }) {
  const status = $("waiting-status");
  if (seconds === 0) say(status, "An officer will be with you shortly.");
  else if (seconds === null) say(status, "You are number {position} in line. No officer is available for your interview right now; you keep your place.", { position });
  else say(status, "You are number {position} in line. Estimated wait: about {minutes} min.", { position, minutes: Math.ceil(seconds / 60) });
}

async function onMessage(message) {
  if (showPeer(message)) return;
  switch (message.type) {
    case "waiting":
      waiting(message);
      break;
    case "paired":
      label(await api("/api/applicant/interview"));
      show("call");
      call.join(message.interview_id);
      break;
    case "ended":
      if (message.next === "cbp") {
        say($("waiting-status"), "The CBSA part is done. Please wait for the CBP officer.");
        show("waiting");
        call.send({ type: "ready", interview_id: interviewId });
      } else {
        call.close();
        show("done");
      }
      break;
    case "error":
      if (document.body.dataset.step === "call") say($("quality"), message.message);
      else fail(message.message);
      break;
  }
}

function onState(state) {
  $("reconnecting").hidden = state !== "reconnecting";
}

function onTrack(seat, stream) {
  const tile = document.querySelector(`.tile[data-seat="${seat}"]`);
  if (!tile) return;
  play(tile.querySelector("video"), stream, call); // its label follows `joined` and `peer`
}

async function enterCall(state) {
  let stream;
  try {
    stream = await openDevices({ forDocuments: true });
  } catch (error) {
    show("devices");
    showHelp($("device-help"), error);
    $("devices-retry").onclick = () => enterCall(state);
    return;
  }
  if (call) {
    // entered already (by another path meanwhile): this camera is not needed twice
    for (const track of stream.getTracks()) track.stop();
    return;
  }
  call = new Call(stream, {
    message: onMessage,
    track: onTrack,
    state: onState,
    reopened: () => call.send({ type: "ready", interview_id: interviewId }),
  });
  play(document.querySelector(".tile.self video"), stream, call);
  wireControls(call);
  await call.open();
  label(state);
  if (state.next === "join") {
    show("call");
    call.join(interviewId);
  } else {
    show("waiting");
    call.send({ type: "ready", interview_id: interviewId });
  }
}

// One consent, one call: a second click while the first is on its way (a double click)
// must not post again nor open a second socket, which the room would take for a rejoin.
$("consent-give").addEventListener("click", async () => {
  const button = $("consent-give");
  if (button.disabled) return;
  if (!$("consent-check").checked) {
    say($("consent-error"), "Tick the box to agree before you continue.");
    $("consent-check").focus();
    return;
  }
  button.disabled = true;
  try {
    await api("/api/applicant/consent", {
      text_version: $("consent-text").dataset.version,
      language: document.documentElement.lang,
    });
    await enterCall(await api("/api/applicant/interview"));
  } catch (error) {
    $("consent-error").textContent = error.message;
    button.disabled = false;
  }
});

async function start() {
  try {
    const state = await api("/api/applicant/interview");
    if (state.next === "done") show("done");
    else if (!state.consented) show("consent");
    else await enterCall(state);
  } catch (error) {
    fail(error.message);
  }
}

start();
