// One participant's side of an interview: the signalling socket (docs/signalling.md),
// one RTCPeerConnection to the server, reconnection, media switches and link quality;
// and the call page's pieces both the applicant's and the officer's pages use.
import { onLanguageChange, say } from "./i18n.js";

const SEATS = ["applicant", "cbsa", "cbp"];
const RETRY_MS = [250, 500, 1000, 2000, 4000];
// Close codes after which reconnecting cannot help (docs/signalling.md).
const SIGNED_OUT = 4401; // the sign-in ended: the page itself asks to sign in again
const REFUSED = 1008; // too many sockets or bad messages: the error said why

export class Call {
  /**
   * @param {MediaStream} stream our camera and microphone
   * @param {object} on handlers: message(msg) for every server message the page cares
   *   about, track(seat, stream), state("connecting"|"connected"|"reconnecting"|"closed")
   */
  constructor(stream, on) {
    this.stream = stream;
    this.on = on;
    this.ws = null;
    this.pc = null;
    this.interviewId = null;
    this.closed = false;
    this.attempt = 0;
    this.remote = new Map(); // seat -> MediaStream
    this.pending = [];
    // The server's messages on this socket (errors) follow the page's language.
    onLanguageChange((language) => this.send({ type: "language", language }));
  }

  /** Open the socket; resolves once it is open. Reopens by itself if it drops mid-call. */
  open() {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
    this.ws = ws;
    ws.onmessage = (event) => this.receive(JSON.parse(event.data));
    ws.onclose = (event) => {
      if (this.ws !== ws || this.closed) return;
      if (event.code === SIGNED_OUT) location.reload();
      else if (event.code === REFUSED) this.stop();
      else this.recover();
    };
    return new Promise((resolve, reject) => {
      ws.onopen = () => {
        for (const message of this.pending.splice(0)) ws.send(JSON.stringify(message));
        resolve();
      };
      ws.onerror = () => reject(new Error("the socket could not be opened"));
    });
  }

  send(message) {
    const full = { v: 1, ...message };
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(full));
    else this.pending.push(full);
  }

  /** Take our seat; the first remote frame after this is the join time we report. */
  join(interviewId) {
    this.interviewId = interviewId;
    performance.clearMarks("join");
    performance.mark("join");
    this.firstFrameSeen = false;
    this.on.state?.("connecting");
    this.send({ type: "join", interview_id: interviewId });
  }

  async receive(message) {
    switch (message.type) {
      case "joined":
        this.on.message?.(message); // who is there already (see showPeer)
        await this.negotiate(message.ice_servers ?? []);
        break;
      case "answer":
        await this.pc?.setRemoteDescription({ type: "answer", sdp: message.sdp });
        break;
      default:
        this.on.message?.(message);
    }
  }

  /** @param {RTCIceServer[]} iceServers TURN relays with this join's own credentials */
  async negotiate(iceServers) {
    this.pc?.close();
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers });
    this.pc = pc;
    this.path = null; // a new connection reports its path again
    for (const track of this.stream.getTracks()) pc.addTransceiver(track, { direction: "sendonly" });
    for (let i = 0; i < SEATS.length - 1; i++) {
      pc.addTransceiver("audio", { direction: "recvonly" });
      pc.addTransceiver("video", { direction: "recvonly" });
    }
    pc.ontrack = ({ track, streams }) => this.addTrack(streams[0]?.id, track);
    pc.onicecandidate = ({ candidate }) => {
      if (candidate?.candidate) {
        this.send({
          type: "candidate",
          candidate: candidate.candidate,
          sdp_mid: candidate.sdpMid,
          sdp_mline_index: candidate.sdpMLineIndex,
        });
      }
    };
    pc.onconnectionstatechange = () => {
      if (this.pc !== pc) return;
      if (pc.connectionState === "connected") {
        this.attempt = 0;
        this.on.state?.("connected");
      } else if (pc.connectionState === "failed") {
        this.recover();
      } else if (pc.connectionState === "disconnected") {
        this.on.state?.("reconnecting");
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    this.send({ type: "offer", sdp: pc.localDescription.sdp });
  }

  addTrack(seat, track) {
    if (!SEATS.includes(seat)) return;
    let stream = this.remote.get(seat);
    if (!stream) {
      stream = new MediaStream();
      this.remote.set(seat, stream);
    }
    for (const old of stream.getTracks().filter((t) => t.kind === track.kind)) stream.removeTrack(old);
    stream.addTrack(track);
    this.on.track?.(seat, stream);
  }

  /** Call from a <video>'s first frame: records the join-to-first-frame time once. */
  firstFrame() {
    if (this.firstFrameSeen || !performance.getEntriesByName("join", "mark").length) return;
    this.firstFrameSeen = true;
    performance.measure("join-to-first-frame", "join");
  }

  /** A dropped connection: a new socket and peer connection into the same seat. */
  async recover() {
    if (this.closed || this.recovering) return;
    this.recovering = true;
    this.on.state?.("reconnecting");
    try {
      while (!this.closed) {
        await new Promise((r) => setTimeout(r, RETRY_MS[Math.min(this.attempt, RETRY_MS.length - 1)]));
        this.attempt += 1;
        try {
          this.pc?.close();
          this.pc = null;
          const old = this.ws;
          this.ws = null;
          old?.close();
          await this.open();
          if (this.interviewId) this.join(this.interviewId);
          else this.on.reopened?.();
          return;
        } catch {
          // keep trying, more slowly
        }
      }
    } finally {
      this.recovering = false;
    }
  }

  setMedia({ audio, video }) {
    if (!this.stream) return;
    for (const track of this.stream.getAudioTracks()) track.enabled = audio;
    for (const track of this.stream.getVideoTracks()) track.enabled = video;
    this.send({ type: "state", audio, video });
  }

  /** "good", "fair" or "poor" from round-trip time and packet loss since the last call;
   * tells the server our path (docs/signalling.md, `path`) when it changed. */
  async quality() {
    if (!this.pc || this.pc.connectionState !== "connected") return null;
    const stats = await this.pc.getStats();
    this.reportPath(stats);
    let rtt = 0;
    let lost = 0;
    let received = 0;
    stats.forEach((report) => {
      if (report.type === "candidate-pair" && report.nominated && report.currentRoundTripTime !== undefined) {
        rtt = report.currentRoundTripTime;
      }
      if (report.type === "inbound-rtp") {
        lost += report.packetsLost || 0;
        received += report.packetsReceived || 0;
      }
    });
    const [lastLost, lastReceived] = this.lastCounts || [0, 0];
    this.lastCounts = [lost, received];
    const total = lost - lastLost + (received - lastReceived);
    const loss = total > 0 ? (lost - lastLost) / total : 0;
    if (rtt < 0.15 && loss < 0.02) return "good";
    if (rtt < 0.4 && loss < 0.08) return "fair";
    return "poor";
  }

  /** Send `path` ("direct" or "relayed", and the relay's protocol) if the selected
   * candidate pair's local candidate changed kind. */
  reportPath(stats) {
    let pairId = null;
    stats.forEach((report) => {
      if (report.type === "transport" && report.selectedCandidatePairId) pairId = report.selectedCandidatePairId;
    });
    const local = stats.get(stats.get(pairId)?.localCandidateId);
    if (!local) return;
    const relayed = local.candidateType === "relay";
    const path = { type: "path", path: relayed ? "relayed" : "direct" };
    if (relayed && ["udp", "tcp", "tls"].includes(local.relayProtocol)) path.protocol = local.relayProtocol;
    const key = `${path.path}/${path.protocol ?? ""}`;
    if (key === this.path) return;
    this.path = key;
    this.send(path);
  }

  /** Out of this interview (it ended), keeping the socket for the next one. */
  hangUp() {
    this.interviewId = null;
    this.pc?.close();
    this.pc = null;
    this.remote.clear();
  }

  /** The server refused this socket for good: no more tries, nothing to send. */
  stop() {
    this.closed = true;
    this.pc?.close();
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.on.state?.("closed");
  }

  /** Leave for good (`end` also ends the interview for everyone: officers only). */
  close(type = "leave") {
    if (this.closed) return;
    this.send({ type });
    this.closed = true;
    setTimeout(() => {
      this.ws?.close();
      this.pc?.close();
    }, 200);
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.on.state?.("closed");
  }
}

/** Play `stream` in `video`, muting it only if the browser refuses sound without a click. */
export function play(video, stream, call) {
  if (video.srcObject !== stream) video.srcObject = stream;
  video.play().catch(() => {
    video.muted = true;
    video.play().catch(() => {});
  });
  if ("requestVideoFrameCallback" in video) video.requestVideoFrameCallback(() => call.firstFrame());
}

/** Show a seat's flag ("audio", "video" or "away") on its tile. */
export function flag(seat, which, on) {
  const element = document.querySelector(`.tile[data-seat="${seat}"] [data-flag="${which}"]`);
  if (element) element.hidden = !on;
}

/**
 * Say on another seat's tile whether someone is there: "connected", "dropped" (their
 * connection broke; the seat is kept for them a while) or "absent" (nobody has joined it
 * yet, or they left). Only the server's messages tell: a seat's media slot arrives with
 * our own connection whether or not anyone sits there.
 */
export function presence(seat, status) {
  const element = document.querySelector(`.tile[data-seat="${seat}"] [data-flag="away"]`);
  if (!element) return;
  element.hidden = status === "connected";
  if (status === "dropped") say(element, "not connected, reconnecting…");
  else if (status === "absent") say(element, "not connected");
}

const SEAT_LABELS = { applicant: "Applicant", cbsa: "CBSA officer", cbp: "CBP officer" };

/**
 * The seats of the call now on: all three in a joint interview; in a two-step one the
 * applicant and the agency whose step it is, CBP's once a CBP officer is seated (its step
 * comes second). `officers`: the seated officers by seat, as the interview's API lists them.
 */
export function stepSeats(mode, officers) {
  if (mode !== "two_step") return SEATS;
  return ["applicant", "cbp" in officers ? "cbp" : "cbsa"];
}

/**
 * Show the tiles of `seats` only: a seat outside this step is no participant of this
 * call, so it gets no tile (not a black one with a name). A tile shown is labelled with its
 * officer's name and agency once known, else with its seat.
 */
export function showSeats(seats, officers = {}) {
  for (const tile of document.querySelectorAll(".tile[data-seat]")) {
    const seat = tile.dataset.seat;
    tile.hidden = !seats.includes(seat);
    const name = tile.querySelector(".name");
    const officer = tile.hidden ? null : officers[seat];
    if (officer) say(name, "{name} ({agency})", { name: officer.name, agency: officer.agency });
    else say(name, SEAT_LABELS[seat]);
  }
}

const PRESENCE = { join: "connected", rejoin: "connected", drop: "dropped", leave: "absent", left: "absent" };

/** Reflect `joined` (who is there) or another seat's `peer` or `peer_state` message; false
 * for any other message. */
export function showPeer(message) {
  if (message.type === "joined") {
    for (const seat of SEATS.filter((seat) => seat !== message.seat)) {
      presence(seat, message.present.includes(seat) ? "connected" : "absent");
    }
  } else if (message.type === "peer") {
    presence(message.seat, PRESENCE[message.event] ?? "absent");
  } else if (message.type === "peer_state") {
    flag(message.seat, "audio", !message.audio);
    flag(message.seat, "video", !message.video);
  } else {
    return false;
  }
  return true;
}

const QUALITY = { good: "Connection: good", fair: "Connection: fair", poor: "Connection: poor" };
const SWITCHES = [
  ["toggle-audio", "Unmute microphone", "Mute microphone"],
  ["toggle-video", "Turn camera on", "Turn camera off"],
];

/** The microphone and camera switches (#toggle-audio, #toggle-video) and the connection
 * quality line (#quality) of a call page. */
export function wireControls(call) {
  const off = (id) => document.getElementById(id).getAttribute("aria-pressed") === "true";
  for (const [id, pressedText, releasedText] of SWITCHES) {
    const button = document.getElementById(id);
    button.addEventListener("click", () => {
      button.setAttribute("aria-pressed", String(!off(id)));
      say(button, off(id) ? pressedText : releasedText);
      call.setMedia({ audio: !off("toggle-audio"), video: !off("toggle-video") });
    });
  }
  setInterval(async () => {
    const quality = await call.quality();
    if (quality) say(document.getElementById("quality"), QUALITY[quality]);
  }, 2000);
}
