// The console's phone: a call rings here in the manner of the FLASH alarm, is answered, and the
// page takes part through WebRTC to its own station (never to the peer: the station carries the
// call). The microphone is captured with echo cancellation, noise suppression and gain control.
// The page keeps the call it is in across a reload (sessionStorage) and rejoins it.

import { isolated as iso } from "./shown.js"; // names from the peer: isolated, nothing hidden

const KEEP = "hotline.call";

export class Phone {
  // h: the console's helpers { api, t, el, $, can, say, tone, word, timeEl }
  constructor(h) {
    Object.assign(this, { h, calls: [], pc: null, stream: null, joined: null, ring: null, stats: null });
    this.ringing = null;
  }

  // ---- what the station says ----
  async refresh() {
    const { calls } = await this.h.api("GET", "/console/calls", null, true);
    this.calls = calls;
    this.render();
    const kept = JSON.parse(sessionStorage.getItem(KEEP) ?? "null");
    const call = kept && calls.find((c) => c.id === kept.id && c.state === "active");
    if (call && !this.joined) await this.join(call, kept.role);
    else if (kept && !call) sessionStorage.removeItem(KEEP);
  }

  onEvent(e) {
    if (e.type === "call_stats") { if (this.joined?.id === e.id) { this.stats = e; this.renderPanel(); } return; }
    const i = this.calls.findIndex((c) => c.id === e.id), call = { ...(this.calls[i] ?? {}), ...e };
    if (i >= 0) this.calls[i] = call; else this.calls.unshift(call);
    if (e.event === "ended" && this.joined?.id === e.id) this.leave();
    this.render();
  }

  // ---- acts ----
  async place(link, precedence) {
    const call = await this.h.api("POST", "/console/calls", { link, precedence });
    this.calls.unshift(call);
    await this.join(call, "principal");
  }

  async answer(call) {
    await this.h.api("POST", `/console/calls/${call.id}/answer`, {});
    await this.join(call, "principal");
  }

  async decline(call) {
    await this.h.api("POST", `/console/calls/${call.id}/decline`, { reason: "declined" });
  }

  // The principal hangs up the call; an interpreter or a listener leaves it, and it goes on.
  async hangUp() {
    const j = this.joined;
    if (!j) return;
    if (j.role === "principal") await this.h.api("POST", `/console/calls/${j.id}/end`, {});
    else this.leave();
  }

  mute() {
    const track = this.stream?.getAudioTracks()[0];
    if (!track || this.joined?.role === "listener") return;
    track.enabled = !track.enabled;
    this.renderPanel();
  }

  async join(call, role) {
    if (this.joined) return;
    this.joined = { id: call.id, role, since: Date.now() };
    sessionStorage.setItem(KEEP, JSON.stringify({ id: call.id, role }));
    const constraints = { audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } };
    this.stream = await navigator.mediaDevices.getUserMedia(constraints);
    const pc = this.pc = new RTCPeerConnection({ iceServers: [] });
    const track = this.stream.getAudioTracks()[0];
    if (role === "listener") track.enabled = false; // a note-taker is muted, and the station mutes them too
    pc.addTrack(track, this.stream);
    pc.ontrack = (ev) => { const a = this.h.$("#call-audio"); a.srcObject = ev.streams[0] ?? new MediaStream([ev.track]); a.play().catch(() => {}); };
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const answer = await this.h.api("POST", `/console/calls/${call.id}/join`, { sdp: pc.localDescription.sdp, role });
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    this.render();
  }

  leave() {
    this.pc?.close();
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    Object.assign(this, { pc: null, stream: null, joined: null, stats: null });
    sessionStorage.removeItem(KEEP);
    this.render();
  }

  // ---- what the person sees and hears ----
  render() {
    this.renderRing();
    this.renderPanel();
    this.renderJoin();
  }

  // A call in progress that this page is not in: an interpreter or a note-taker may join it.
  renderJoin() {
    const { $, can } = this.h, box = $("#call-join");
    const call = this.joined ? null : this.calls.find((c) => c.state === "active");
    box.hidden = !call || !(can("interpret") || can("listen"));
    if (box.hidden) return;
    box.dataset.call = call.id;
    $("#call-join-who").textContent = `${call.precedence} · ${iso(call.caller?.person ?? "")} ↔ ${iso(call.answerer?.person ?? "")}`;
    $("#call-join-interpreter").hidden = !can("interpret");
    $("#call-join-listener").hidden = !can("listen");
  }

  ringingCall() {
    return this.calls.find((c) => c.direction === "incoming" && c.state === "ringing_in");
  }

  renderRing() {
    const { $, t, can } = this.h, call = this.ringingCall(), box = $("#call-ring");
    box.hidden = !call || !!this.joined;
    document.body.classList.toggle("call-flash", !box.hidden && call.precedence === "FLASH");
    if (box.hidden) { this.stopRing(); return; }
    $("#call-ring-precedence").textContent = call.precedence;
    $("#call-ring-from").textContent = `${iso(call.caller?.person ?? "")} (${iso(call.caller?.role ?? "")}), ${call.link}`;
    $("#call-ring-recorded").hidden = !call.recorded;
    $("#call-answer").hidden = $("#call-decline").hidden = !can("call");
    box.dataset.call = call.id;
    box.classList.toggle("flash", call.precedence === "FLASH");
    $("#call-ring-title").textContent = t("call_incoming");
    this.startRing();
  }

  renderPanel() {
    const { $, t, el } = this.h, panel = $("#call-panel"), j = this.joined;
    panel.hidden = !j;
    if (!j) return;
    const call = this.calls.find((c) => c.id === j.id) ?? {}, s = this.stats ?? {};
    const track = this.stream?.getAudioTracks()[0];
    const secs = Math.floor((Date.now() - (call.answered_ns ? Number(call.answered_ns) / 1e6 : j.since)) / 1000);
    $("#call-with").textContent = call.direction === "outgoing" ? (call.answerer ? iso(call.answerer.person) : t("call_ringing_out")) : iso(call.caller?.person ?? "");
    $("#call-state").textContent = t(`call_state_${call.state}`) ?? call.state;
    $("#call-elapsed").textContent = call.state === "active" ? `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, "0")}` : "";
    $("#call-recorded").hidden = !call.recorded;
    $("#call-transport").textContent = s.media?.transport ?? "—";
    $("#call-mute").textContent = t(track && !track.enabled ? "call_unmute" : "call_mute");
    $("#call-mute").disabled = j.role === "listener";
    $("#call-end").textContent = t(j.role === "principal" ? "call_end" : "call_leave");
    $("#call-people").replaceChildren(...(s.participants ?? []).map((p) =>
      el("li", { class: p.speaking ? "speaking" : "" }, `${iso(p.person)} · ${t(`call_role_${p.role}`)}${p.muted ? ` · ${t("call_muted")}` : ""}`)));
    $("#call-paths").replaceChildren(...(s.media?.paths ?? []).map((p) =>
      el("li", { class: p.live ? "live" : "dead" }, t("call_path", {
        path: p.path + 1, loss: (100 * p.loss).toFixed(1), jitter: p.jitter_ms, rtt: p.rtt_ms ?? "—" }))));
  }

  startRing() {
    if (this.ring) return;
    let on = true;
    const beep = () => { if (on) this.h.tone(440, 0.1)?.stop(this.h.audioTime() + 0.4); on = !on; };
    beep();
    this.ring = setInterval(beep, 500);
  }

  stopRing() {
    clearInterval(this.ring);
    this.ring = null;
  }
}

// The offer is sent whole (no trickle): wait until the browser has gathered its candidates.
function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000); // no more than a few seconds: host candidates come at once
  });
}
