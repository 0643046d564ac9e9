// Audit console, one session: the verification summary, the timeline, the decisions, the
// ID stills, who looked; and the replay: every seat's segments, decrypted by the console
// as they are fetched (HTTP Range), appended to a MediaSource at their place on the
// session's clock, all three videos following one timeline.
import { say, t } from "./i18n.js";

const interviewId = document.body.dataset.interview;
const $ = (id) => document.getElementById(id);
const MIME = 'video/webm; codecs="vp8,opus"';
const AHEAD = 60; // seconds of media kept loaded ahead of the position
const DRIFT = 0.3; // seconds a video may stray from the timeline before it is moved

function minutes(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function element(tag, text, attributes = {}) {
  const node = Object.assign(document.createElement(tag), attributes);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** One seat's video fed from its segments through Media Source Extensions. */
class SeatPlayer {
  constructor(video, segments, duration) {
    this.video = video;
    this.segments = segments;
    this.next = 0;
    this.busy = false;
    this.generation = 0;
    this.source = new MediaSource();
    video.src = URL.createObjectURL(this.source);
    this.ready = new Promise((resolve) => {
      this.source.addEventListener("sourceopen", () => {
        this.buffer = this.source.addSourceBuffer(MIME);
        this.buffer.mode = "segments";
        this.source.duration = duration;
        resolve();
      }, { once: true });
    });
  }

  has(position) {
    const ranges = this.video.buffered;
    for (let i = 0; i < ranges.length; i++) {
      if (ranges.start(i) <= position + 0.05 && position < ranges.end(i)) return true;
    }
    return false;
  }

  present(position) {
    return this.segments.some((s) => s.start <= position && position < s.start + s.duration + 0.5);
  }

  appended() {
    return new Promise((resolve) => this.buffer.addEventListener("updateend", resolve, { once: true }));
  }

  async append(bytes) {
    this.buffer.appendBuffer(bytes);
    await this.appended();
  }

  /** Load what the position needs next; a jump outside what is loaded starts afresh. */
  async pump(position) {
    await this.ready;
    if (this.busy) return;
    this.busy = true;
    const generation = this.generation;
    try {
      if (!this.has(position) && this.present(position)) {
        const at = this.segments.findIndex((s) => position < s.start + s.duration);
        if (at >= 0 && (at < this.next - 1 || at >= this.next)) {
          this.buffer.abort();
          if (this.buffer.buffered.length) {
            this.buffer.remove(0, Infinity);
            await this.appended();
          }
          this.next = at;
        }
      }
      while (this.next < this.segments.length && this.segments[this.next].start < position + AHEAD) {
        if (generation !== this.generation) return;
        await this.load(this.segments[this.next]);
        this.next += 1;
      }
    } finally {
      this.busy = false;
    }
  }

  async load(segment) {
    this.buffer.abort(); // a new WebM begins: reset the parser, then place it on the clock
    this.buffer.timestampOffset = segment.start;
    let offset = 0;
    for (;;) {
      const response = await fetch(`/media/${interviewId}/${segment.file}`, {
        headers: { Range: `bytes=${offset}-` },
      });
      if (!response.ok) throw new Error(`${segment.file}: ${response.status}`);
      const bytes = await response.arrayBuffer();
      await this.append(bytes);
      offset += bytes.byteLength;
      const total = Number((response.headers.get("Content-Range") || "").split("/")[1]);
      if (!bytes.byteLength || !total || offset >= total) return;
    }
  }
}

/** The session's clock: every seat's video follows it. */
class Timeline {
  constructor(players, duration) {
    this.players = players;
    this.duration = duration;
    this.position = 0;
    this.playing = false;
    this.slider = $("position");
    this.slider.max = String(duration);
    this.slider.addEventListener("input", () => this.seek(Number(this.slider.value)));
    $("play").addEventListener("click", () => (this.playing ? this.pause() : this.play()));
    $("sound").addEventListener("change", () => {
      for (const player of players) player.video.muted = !$("sound").checked;
    });
    requestAnimationFrame(() => this.tick());
  }

  now() {
    return this.playing ? Math.min(this.duration, this.from + (performance.now() - this.since) / 1000) : this.position;
  }

  play() {
    this.from = this.position >= this.duration ? 0 : this.position;
    this.since = performance.now();
    this.playing = true;
    $("play").setAttribute("aria-pressed", "true");
    say($("play"), "Pause");
  }

  pause() {
    this.position = this.now();
    this.playing = false;
    $("play").setAttribute("aria-pressed", "false");
    say($("play"), "Play");
    for (const player of this.players) player.video.pause();
  }

  seek(position) {
    this.position = Math.max(0, Math.min(this.duration, position));
    this.from = this.position;
    this.since = performance.now();
    for (const player of this.players) {
      player.generation += 1;
      player.video.currentTime = this.position;
    }
    this.tick(true);
  }

  tick(once = false) {
    const position = this.now();
    if (this.playing) this.position = position;
    if (this.playing && position >= this.duration) this.pause();
    // A video that seeks decodes from the keyframe before the position, which takes a
    // while: the clock waits for it (the others hold still meanwhile), as moving on would
    // leave it behind and moving it again would start its seek afresh, never catching up.
    // (A seek into what is not loaded, a gap between segments, waits for nothing.)
    const decoding = (p) => p.video.seeking && p.has(p.video.currentTime);
    const seeking = this.players.some((p) => decoding(p) && p.present(position));
    if (seeking && this.playing) {
      this.from = position;
      this.since = performance.now();
    }
    for (const player of this.players) {
      player.pump(position).catch((error) => console.warn(error));
      const video = player.video;
      const tile = video.closest(".tile");
      tile.dataset.present = String(player.present(position));
      if (!decoding(player) && Math.abs(video.currentTime - position) > DRIFT) video.currentTime = position;
      if (this.playing && !seeking && player.has(position)) {
        if (video.paused) video.play().catch(() => {});
      } else if (!video.paused) {
        video.pause();
      }
    }
    this.slider.value = String(position);
    $("clock").textContent = `${minutes(position)} / ${minutes(this.duration)}`;
    if (!once) requestAnimationFrame(() => this.tick());
  }
}

const SEAT_NAMES = { applicant: "the applicant", cbsa: "the CBSA officer", cbp: "the CBP officer" };

function eventText(event) {
  const who = event.seat ? t(SEAT_NAMES[event.seat] || event.seat) : "";
  switch (event.kind) {
    case "consent":
      return t("consent given (text {version}, {language})", { version: event.text_version, language: event.language });
    case "join":
      return event.agency
        ? t("{who} joined ({agency}, working from {country})", { who, agency: event.agency, country: event.country })
        : t("{who} joined", { who });
    case "drop":
      return t("{who} lost the connection", { who });
    case "rejoin":
      return t("{who} rejoined after {seconds} s", { who, seconds: event.gap_seconds });
    case "leave":
    case "left":
      return t("{who} left", { who });
    case "still":
      return t("ID still {number} captured by {agency}", { number: event.number, agency: event.agency });
    case "decision":
      return t("{agency} decided: {verdict}", { agency: event.agency, verdict: t(event.verdict) });
    case "end":
      return event.by ? t("ended by {who}", { who: t(SEAT_NAMES[event.by] || event.by) }) : t("record closed");
    case "shred":
      return t("key material destroyed ({reason})", { reason: event.reason || "" });
    default:
      return event.kind;
  }
}

function showVerification(data) {
  const v = data.verification;
  const verdict = $("verdict");
  verdict.dataset.status = data.status;
  verdict.dataset.waitingFor = v.witnessing.waiting_for; // close | witness keys | cosignatures
  if (data.status === "verified") say(verdict, "Verified: signatures, hash chain, every segment, consent and completeness");
  else if (data.status === "incomplete" && !v.closed) say(verdict, "Incomplete: the record ends without its final checkpoint");
  else if (data.status === "incomplete") verdict.textContent = t("incomplete"); // the problems below say what is unwitnessed
  else say(verdict, "Verification FAILED");
  const checks = [
    ["{count} events in the hash chain", { count: v.events }, v.events > 0],
    ["{count} signed checkpoints, the last covering {last} events", { count: v.checkpoints, last: v.last_checkpoint }, v.complete],
    ["{count} media segments present with matching hashes", { count: v.segments }, v.segments > 0],
    [v.consent ? "consent recorded" : "no consent recorded", {}, v.consent],
  ];
  if (v.witnessed_by.length) checks.push(["co-signed by {names}", { names: v.witnessed_by.join(", ") }, true]);
  $("checks").replaceChildren(...checks.map(([message, fields, ok]) => {
    const item = element("li");
    say(item, message, fields);
    item.dataset.ok = String(ok && v.problems.length === 0);
    return item;
  }));
  $("problems").replaceChildren(...v.problems.map((problem) => element("li", problem)));
}

function showTimeline(data, timeline) {
  $("timeline").replaceChildren(...data.timeline.map((event) => {
    const button = element("button", `${minutes(event.at)}  ${eventText(event)}`, { type: "button", className: "link-button" });
    button.dataset.kind = event.kind;
    button.addEventListener("click", () => timeline.seek(event.at));
    const item = element("li");
    item.append(button);
    return item;
  }));
}

function showDecisions(data) {
  $("decisions").replaceChildren(...data.decisions.map((decision) => {
    const box = element("div", undefined, { className: "decision" });
    box.append(element("p", `${decision.agency}: ${t(decision.verdict)} ${decision.reason_codes.join(" ")}`));
    if (decision.notes) box.append(element("blockquote", decision.notes));
    return box;
  }));
  if (!data.decisions.length) say($("decisions"), "No decision recorded.");
}

function showStills(data, timeline) {
  $("stills").replaceChildren(...data.stills.map((still) => {
    const image = element("img", undefined, {
      src: `/stills/${interviewId}/${still.number}`,
      alt: t("ID still {number} ({agency}) at {time}", { number: still.number, agency: still.agency, time: minutes(still.at) }),
    });
    image.addEventListener("click", () => timeline.seek(still.at));
    return image;
  }));
}

function showAccesses(data) {
  say($("trail-status"), data.access_log.verified
    ? "The access log verifies ({count} entries)."
    : "The access log does NOT verify.", { count: data.access_log.entries });
  $("accesses").replaceChildren(...data.accesses.map((a) => element("li", `${a.at.slice(0, 19).replace("T", " ")}  ${a.auditor}  ${t(a.action)}`)));
}

async function start() {
  const response = await fetch(`/api/sessions/${interviewId}`);
  const data = await response.json();
  if (!response.ok) {
    $("verdict").textContent = data.error.message;
    return;
  }
  showVerification(data);
  const players = [];
  for (const tile of document.querySelectorAll("#players .tile")) {
    const segments = data.seats[tile.dataset.seat] || [];
    if (!segments.length) {
      tile.hidden = true;
      continue;
    }
    players.push(new SeatPlayer(tile.querySelector("video"), segments, data.duration));
  }
  const timeline = new Timeline(players, data.duration);
  window.auditTimeline = timeline; // for the end-to-end tests' checks
  showTimeline(data, timeline);
  showDecisions(data);
  showStills(data, timeline);
  showAccesses(data);
}

start();
