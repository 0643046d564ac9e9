// The device check: browser support, camera preview, microphone level and connection,
// with help tailored to what went wrong (permission denied, no device, device busy); and
// which ways to our media the network allows (direct UDP, the relay over UDP, the relay
// over TLS on port 443), with what to do when none does.
import { say } from "./i18n.js";

const HELP = {
  denied: [
    "Your browser is blocking the camera or microphone",
    "Allow this page to use them: click the camera icon in the address bar (on a phone, open the browser's settings for this site), choose Allow, then press Try again.",
  ],
  missing: [
    "No camera or microphone was found",
    "Connect a camera and a microphone, or open your link on a phone or laptop that has them, then press Try again.",
  ],
  busy: [
    "Your camera or microphone is in use",
    "Close other applications that may be using them (video calls, camera apps), then press Try again.",
  ],
  unsupported: [
    "This browser cannot make video calls",
    "Open your link in a recent version of Chrome, Edge, Firefox or Safari.",
  ],
  other: [
    "Your camera or microphone could not be started",
    "Press Try again. If it keeps failing, restart your browser or your device.",
  ],
};

export const browserSupported = () =>
  Boolean(navigator.mediaDevices?.getUserMedia && window.RTCPeerConnection && window.WebSocket);

/**
 * The camera and microphone. With `forDocuments` (the applicant, who holds identity
 * documents up to the camera) the video is marked as detail: when the sending browser is
 * short of CPU or bandwidth it lowers the frame rate and keeps the resolution, so the
 * officers' ID stills stay readable.
 */
export async function openDevices({ forDocuments = false } = {}) {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true },
    video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } },
  });
  if (forDocuments) for (const track of stream.getVideoTracks()) track.contentHint = "detail";
  return stream;
}

function problemOf(error) {
  if (!browserSupported()) return "unsupported";
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "denied";
    case "NotFoundError":
    case "OverconstrainedError":
      return "missing";
    case "NotReadableError":
    case "AbortError":
      return "busy";
    default:
      return "other";
  }
}

/** Show the help for `error` in a box holding #…-title and #…-text; returns the problem. */
export function showHelp(box, error) {
  const problem = problemOf(error);
  const [title, text] = HELP[problem];
  say(box.querySelector("h3"), title);
  say(box.querySelector("p"), text);
  box.dataset.problem = problem;
  box.hidden = false;
  return problem;
}

/** Drive a <meter> from the stream's loudness; returns the function that stops it. */
export function levelMeter(stream, meter) {
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 512;
  context.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  let running = true;
  const tick = () => {
    if (!running) return;
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const sample of samples) sum += sample * sample;
    meter.value = Math.min(1, 4 * Math.sqrt(sum / samples.length));
    requestAnimationFrame(tick);
  };
  context.resume().then(tick);
  return () => {
    running = false;
    context.close();
  };
}

function mark(root, check, message, fields, ok) {
  const item = root.querySelector(`[data-check="${check}"]`);
  say(item, message, fields);
  item.dataset.ok = String(ok);
}

// Each way to our media: what it is tried with, and its lines when it works or not.
const PATHS = {
  udp: ["Direct connection (UDP): works", "Direct connection (UDP): blocked"],
  "relay-udp": ["Relay over UDP: works", "Relay over UDP: blocked"],
  "relay-tls": ["Relay over TLS (port 443): works", "Relay over TLS (port 443): blocked"],
};
const GATHER_MS = 6000;

/** The relay's URLs by way: `turn:` over UDP, `turns:` (TLS); and a `stun:` URL on the
 * relay's UDP port for the direct check (UDP reaching our relay stands for UDP reaching
 * our media servers, which answer no STUN of their own). */
function ways(iceServers) {
  const found = { udp: [], "relay-udp": [], "relay-tls": [] };
  for (const server of iceServers) {
    for (const url of [server.urls].flat()) {
      const relay = { urls: url, username: server.username, credential: server.credential };
      if (url.startsWith("turns:")) found["relay-tls"].push(relay);
      else if (url.startsWith("turn:") && !url.includes("transport=tcp")) {
        found["relay-udp"].push(relay);
        found.udp.push({ urls: url.replace(/^turn:/, "stun:").replace(/\?.*$/, "") });
      }
    }
  }
  return found;
}

/** Gather candidates with `iceServers` alone; resolves true if the way works: a relay
 * candidate for a relay; for the direct check a server-reflexive one, or host candidates
 * and a gathering that ended without the STUN server failing to answer (no NAT between
 * us, so no reflexive candidate; a browser made to relay everything gives no host ones). */
function tryWay(iceServers, relay) {
  return new Promise((resolve) => {
    const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: relay ? "relay" : "all" });
    let failed = false;
    let host = false;
    const done = (ok) => {
      clearTimeout(timer);
      pc.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), GATHER_MS);
    pc.onicecandidateerror = () => {
      failed = true;
    };
    pc.onicecandidate = ({ candidate }) => {
      if (candidate?.type === (relay ? "relay" : "srflx")) done(true);
      else if (candidate?.type === "host") host = true;
      else if (!candidate) done(!relay && host && !failed);
    };
    pc.createDataChannel("check");
    pc.createOffer().then((offer) => pc.setLocalDescription(offer)).catch(() => done(false));
  });
}

/** Try each way to our media the server offers and show which work; when none does, say
 * what the applicant can do. Never blocks the check: a call may still get through. */
export async function checkPaths(root, relaysUrl) {
  const run = String(Number(root.dataset.pathRun ?? 0) + 1);
  root.dataset.pathRun = run; // "Try again" starts another run: only the newest shows
  const help = root.querySelector("#path-help");
  help.hidden = true;
  let iceServers = [];
  try {
    const response = await fetch(relaysUrl, { cache: "no-store" });
    if (response.status === 429) {
      const minutes = Math.ceil(Number(response.headers.get("Retry-After") || 60) / 60);
      say(help.querySelector("h3"), "The connection check is paused");
      say(
        help.querySelector("p"),
        "The connection check has run many times for this invitation. Try again in {minutes} min; you can still go on to your interview.",
        { minutes },
      );
      help.hidden = false;
      return;
    }
    if (response.ok) iceServers = (await response.json()).ice_servers;
  } catch {
    // no relays to try: the lines stay hidden
  }
  const offered = Object.entries(ways(iceServers)).filter(([, servers]) => servers.length);
  const results = await Promise.all(
    offered.map(([way, servers]) => {
      const item = root.querySelector(`[data-check="${way}"]`);
      item.hidden = false;
      return tryWay(servers, way !== "udp");
    }),
  );
  if (root.dataset.pathRun !== run) return;
  offered.forEach(([way], i) => mark(root, way, PATHS[way][results[i] ? 0 : 1], {}, results[i]));
  if (offered.length && !results.some(Boolean)) {
    const host = new URL(offered[0][1][0].urls.replace(/^(turns?|stun):/, "https://")).hostname;
    say(help.querySelector("h3"), "Your network blocks video calls");
    say(
      help.querySelector("p"),
      "Try another network (a home connection, or your phone's mobile data instead of Wi-Fi), or ask your network administrator to allow connections to {host} on port 443.",
      { host },
    );
    help.hidden = false;
  }
}

/** Run every check in `root` (the device_check.html block); resolves to the stream and a
 * stop function, or rejects after showing the help. */
export async function checkDevices(root) {
  const help = root.querySelector("#device-help");
  help.hidden = true;
  if (!browserSupported()) {
    mark(root, "browser", "Browser: cannot make video calls", {}, false);
    showHelp(help, null);
    throw new Error("unsupported browser");
  }
  mark(root, "browser", "Browser: supported", {}, true);
  let stream;
  try {
    stream = await openDevices();
  } catch (error) {
    mark(root, "camera", "Camera: not available", {}, false);
    mark(root, "microphone", "Microphone: not available", {}, false);
    showHelp(help, error);
    throw error;
  }
  const video = stream.getVideoTracks()[0];
  const { width = 0, height = 0 } = video.getSettings();
  mark(root, "camera", "Camera: working ({width}×{height})", { width, height }, true);
  mark(root, "microphone", "Microphone: working", {}, true);
  const preview = root.querySelector("video");
  preview.srcObject = stream;
  const stopMeter = levelMeter(stream, root.querySelector("meter"));
  const started = performance.now();
  try {
    const response = await fetch("/healthz", { cache: "no-store" });
    if (!response.ok) throw new Error(String(response.status));
    const ms = Math.round(performance.now() - started);
    mark(root, "connection", "Connection: good ({ms} ms to our server)", { ms }, true);
  } catch {
    mark(root, "connection", "Connection: our server cannot be reached", {}, false);
  }
  const token = location.pathname.match(/^\/i\/([^/]+)$/)?.[1];
  if (token) checkPaths(root, `/api/invitations/${token}/relays`);
  const stop = () => {
    stopMeter();
    for (const track of stream.getTracks()) track.stop();
    preview.srcObject = null;
  };
  return { stream, stop };
}
