// The device check: browser support, camera preview, microphone level and connection,
// with help tailored to what went wrong (permission denied, no device, device busy).
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

export function openDevices() {
  return navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true },
    video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } },
  });
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

/** Run every check in `root` (the device_check.html block); resolves to the stream and a
 * stop function, or rejects after showing the help. */
export async function checkDevices(root) {
  const help = root.querySelector(".help");
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
  const stop = () => {
    stopMeter();
    for (const track of stream.getTracks()) track.stop();
    preview.srcObject = null;
  };
  return { stream, stop };
}
