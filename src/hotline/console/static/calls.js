// The calls page: every call of this station (live ones, then the records it wrote in its chain),
// missed calls first until a person acknowledges them; and one call in full, with its recordings
// (played here for those who may hear them) and its record of conversation, written by a
// note-taker, reviewed by another person and certified by a supervisor. The station keeps every
// rule; this module only shows them. Strings from outside go through peer() (shown.js).

import { isolated as iso, peer } from "./shown.js";

export const CALL_WORDS = {
  en: {
    nav_calls: "Calls", calls_title: "Calls", calls_missed_title: "Missed calls waiting for acknowledgement",
    calls_none: "No calls yet", call_missed: "MISSED", call_missed_from: "{precedence} call from {who} on link {link}",
    call_ack_missed: "Acknowledge", call_missed_acked: "Missed call acknowledged", kind_missed_call: "Missed call",
    open_calls: "Open the calls page",
    col_dir: "Direction", col_caller: "Who called", col_answerer: "Who answered", col_started: "Started (UTC)",
    col_duration: "Duration", col_end: "End reason", col_recorded: "Recorded", col_memcon: "Record of conversation",
    call_dir_outgoing: "outgoing", call_dir_incoming: "incoming", not_answered: "not answered",
    yes: "yes", no: "no", files_n: "yes, {n} file(s)", no_audio: "nothing recorded",
    memcon_none: "none", memcon_written: "written, not reviewed", memcon_reviewed: "reviewed, not certified",
    memcon_certified: "CERTIFIED",
    call_back: "← Back to the calls", call_invited: "Invited", call_answered_at: "Answered", call_ended_at: "Ended",
    call_transport_used: "Transport", call_people: "Participants", call_recordings: "Recordings",
    call_no_recordings: "Not recorded", call_may_not_hear: "(your role may not play recordings)",
    memcon_title: "Record of conversation", memcon_none_yet: "Nobody has written it yet.",
    memcon_write: "Write the record of conversation", memcon_save: "Save the record",
    memcon_written_by: "written by {who} ({role})", memcon_closed: "Certified: this record is closed.",
    memcon_review: "Mark as reviewed", memcon_certify: "Certify", memcon_saved: "Record of conversation saved",
    side_local: "here", side_peer: "peer",
  },
  ru: {
    nav_calls: "Звонки", calls_title: "Звонки", calls_missed_title: "Пропущенные звонки, ожидающие подтверждения",
    calls_none: "Звонков пока не было", call_missed: "ПРОПУЩЕН", call_missed_from: "Звонок {precedence} от {who}, линия {link}",
    call_ack_missed: "Подтвердить", call_missed_acked: "Пропущенный звонок подтверждён", kind_missed_call: "Пропущенный звонок",
    open_calls: "Открыть страницу звонков",
    col_dir: "Направление", col_caller: "Кто звонил", col_answerer: "Кто ответил", col_started: "Начало (UTC)",
    col_duration: "Длительность", col_end: "Причина завершения", col_recorded: "Запись", col_memcon: "Запись беседы",
    call_dir_outgoing: "исходящий", call_dir_incoming: "входящий", not_answered: "без ответа",
    yes: "да", no: "нет", files_n: "да, файлов: {n}", no_audio: "записывать было нечего",
    memcon_none: "нет", memcon_written: "составлена, не проверена", memcon_reviewed: "проверена, не заверена",
    memcon_certified: "ЗАВЕРЕНА",
    call_back: "← К списку звонков", call_invited: "Вызов", call_answered_at: "Ответ", call_ended_at: "Завершение",
    call_transport_used: "Канал", call_people: "Участники", call_recordings: "Записи звонка",
    call_no_recordings: "Не записывался", call_may_not_hear: "(вашей роли прослушивание записей не разрешено)",
    memcon_title: "Запись беседы", memcon_none_yet: "Её ещё никто не составил.",
    memcon_write: "Составить запись беседы", memcon_save: "Сохранить запись",
    memcon_written_by: "составил(а) {who} ({role})", memcon_closed: "Заверена: запись закрыта.",
    memcon_review: "Отметить как проверенную", memcon_certify: "Заверить", memcon_saved: "Запись беседы сохранена",
    side_local: "здесь", side_peer: "ответная сторона",
  },
};

// A party of a call, from a record: each name from outside, isolated and shown as it is.
const party = (el, p) => el("span", { class: "party" }, peer(p.person), " (", peer(p.role), "), ", peer(p.station ?? ""));

function span(ns) {
  if (ns == null) return "—";
  const s = Math.round(Number(ns) / 1e9), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  const mmss = `${String(m).padStart(h ? 2 : 1, "0")}:${String(s % 60).padStart(2, "0")}`;
  return h ? `${h}:${mmss}` : mmss;
}

export class CallLog {
  // h: the console's helpers { api, t, el, $, can, run, say, timeEl, word, button, show, enc, me, lang }
  constructor(h) {
    Object.assign(this, { h, log: null, open: null, detail: null, missedKey: "" });
  }

  // ---- the list ----
  async load(background = false) {
    this.log = await this.h.api("GET", "/console/call-log", null, background);
    this.render();
  }

  render() {
    const { $, el, t } = this.h, log = this.log ?? { calls: [], missed: [] };
    const missed = log.missed ?? [];
    $("#calls-missed").hidden = !missed.length;
    $("#calls-missed-list").replaceChildren(...missed.map((m) => this.missedItem(m)));
    const rows = (log.calls ?? []).map((c) => this.row(c));
    $("#calls-table tbody").replaceChildren(...rows);
    if (!rows.length) $("#calls-table tbody").append(el("tr", {}, el("td", { colspan: 10, class: "muted", text: t("calls_none") })));
  }

  missedItem(m) {
    const { el, t, can, button, run, timeEl } = this.h;
    const text = t("call_missed_from", { precedence: m.precedence, who: `${iso(m.caller?.person ?? "")} (${iso(m.caller?.role ?? "")})`,
      link: m.link });
    return el("li", { "data-call": m.id, class: "missed" }, el("strong", { class: `lane lane-${m.precedence}`, text: t("call_missed") }), " ",
      el("span", { text }), " · ", timeEl(m.invited_ns), " ",
      can("acknowledge") ? button("primary missed-ack", "call_ack_missed", (e) => run(() => this.acknowledge(m), e.currentTarget)) : null);
  }

  row(c) {
    const { el, t, word, timeEl } = this.h;
    const live = c.state !== "ended", duration = live ? word("call_state_", c.state) : c.answered_ns == null ? "—" : span(c.duration_ns);
    // Recorded, but never answered: there was nothing to record (the record names no file).
    const recorded = c.recordings?.length ? t("files_n", { n: c.recordings.length })
      : !c.recorded ? t("no") : live ? t("yes") : t("no_audio");
    const tr = el("tr", { "data-call": c.id, "data-state": c.state, tabindex: c.record ? 0 : null,
      class: [c.missed ? "missed" : "", c.missed_waiting ? "waiting" : "", live ? "live" : ""].join(" ").trim() || null },
    el("td", { class: `lane lane-${c.precedence}`, text: c.precedence }),
    el("td", { text: word("call_dir_", c.direction) }),
    el("td", { class: "mono", text: c.link }),
    el("td", {}, party(el, c.caller)),
    el("td", {}, c.answerer ? party(el, c.answerer) : c.missed ? el("strong", { class: "tag missed-tag", text: t("call_missed") })
      : el("span", { class: "muted", text: t("not_answered") })),
    el("td", {}, timeEl(c.invited_ns)),
    el("td", { class: "num", text: duration }),
    el("td", {}, live ? "" : peer(c.end_reason ?? "")),
    el("td", { text: recorded }),
    el("td", { class: `memcon-${c.memcon}`, text: word("memcon_", c.memcon) }));
    if (c.record) {
      tr.addEventListener("click", () => this.openRecord(c));
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.target === tr) this.openRecord(c); });
    }
    return tr;
  }

  async acknowledge(m) {
    await this.h.api("POST", `/console/calls/${this.h.enc(m.id)}/missed/acknowledge`, {});
    this.h.say(this.h.t("call_missed_acked"), "info");
    await this.load();
  }

  // The board changed: reload when the missed calls standing as alarms did (raised or cleared).
  onBoard(board, view) {
    const missed = (board?.alarms ?? []).filter((a) => a.kind === "missed_call");
    Object.assign(this.h.$("#calls-missed-count"), { textContent: String(missed.length), hidden: !missed.length });
    const key = missed.map((a) => a.id).sort().join(",");
    const changed = key !== this.missedKey;
    this.missedKey = key;
    if (changed && view === "calls") this.h.run(() => this.load(true));
  }

  // ---- one call ----
  openRecord(c) {
    this.open = { link: c.link, seq: c.record.seq };
    this.detail = null;
    this.h.show("call");
    this.h.run(() => this.loadRecord());
  }

  async loadRecord(background = false) {
    const o = this.open;
    if (!o) return;
    const detail = await this.h.api("GET", `/console/call-records/${this.h.enc(o.link)}/${this.h.enc(o.seq)}`, null, background);
    if (this.open !== o) return;
    this.detail = detail;
    this.renderRecord();
  }

  renderRecord() {
    const { $, el, t, word, timeEl } = this.h, c = this.detail, box = $("#call-record-body");
    if (!c) { box.replaceChildren(); return; }
    const fact = (key, ...value) => [el("dt", { text: t(key) }), el("dd", {}, value)];
    box.replaceChildren(...[
      el("h2", {}, el("span", { class: `lane lane-${c.precedence}`, text: c.precedence }), ` · ${word("call_dir_", c.direction)} · ${c.link} `,
        c.missed ? el("strong", { class: "tag missed-tag", text: t("call_missed") }) : null),
      el("dl", { class: "facts" },
        fact("col_caller", party(el, c.caller)),
        fact("col_answerer", c.answerer ? party(el, c.answerer) : t("not_answered")),
        fact("call_invited", timeEl(c.invited_ns)), fact("call_answered_at", timeEl(c.answered_ns)),
        fact("call_ended_at", timeEl(c.ended_ns)),
        fact("col_duration", c.answered_ns == null ? "—" : span(c.duration_ns)),
        fact("col_end", peer(c.end_reason ?? "")), fact("call_transport_used", c.transport ?? "—"),
        fact("col_memcon", el("span", { class: `memcon-${c.memcon}`, text: word("memcon_", c.memcon) }))),
      c.participants?.length ? el("section", {}, el("h3", { text: t("call_people") }), el("ul", {}, c.participants.map((p) =>
        el("li", {}, peer(p.person), ` · ${word("call_role_", p.role)} · ${word("side_", p.side)}`)))) : null,
      this.recordings(c), this.memcons(c)].filter((x) => x != null));
  }

  recordings(c) {
    const { el, t, can, enc } = this.h, files = c.recordings ?? [];
    const base = `/console/call-records/${enc(c.link)}/${enc(c.record.seq)}/recordings/`;
    return el("section", { class: "recordings" }, el("h3", { text: t("call_recordings") }),
      !files.length ? el("p", { class: "muted", text: t("call_no_recordings") }) : el("ul", {}, files.map((f) => el("li", { "data-recording": f.name },
        el("span", { class: "mono" }, peer(f.name)), ` · ${f.size} B `,
        can("hear") ? el("audio", { controls: true, preload: "none", src: base + enc(f.name) })
          : el("span", { class: "muted", text: t("call_may_not_hear") })))));
  }

  // The record of conversation: each version written, who reviewed and certified it; the buttons
  // follow the rules (the station enforces them: no one checks their own, certify after review).
  memcons(c) {
    const { el, t, can, button, run, api, enc, word } = this.h, me = this.h.me()?.operator;
    const notes = c.annotations ?? [], base = `/console/call-records/${enc(c.link)}/${enc(c.record.seq)}/memcon`;
    const reviews = notes.filter((a) => a.kind === "review"), certs = notes.filter((a) => a.kind === "certification");
    const closed = c.memcon === "certified";
    const items = notes.filter((a) => a.kind === "memcon").map((a) => {
      const by = reviews.filter((r) => r.refers === a.hash), cert = certs.find((x) => x.refers === a.hash);
      const act = (key, what) => button("quiet", key, (e) => run(async () => {
        await api("POST", `${base}/${a.hash}/${what}`, { remark: "" });
        await this.loadRecord();
      }, e.currentTarget), { "data-act": what });
      return el("li", { class: `annotation memcon${cert ? " is-certified" : ""}`, "data-hash": a.hash },
        el("pre", { class: "fulltext", lang: a.language }, peer(a.text)),
        el("p", { class: "muted" }, peer(a.language), " · ", t("memcon_written_by", { who: iso(a.person), role: word("role_", a.role) }), " · ",
          by.length ? el("span", { text: t("reviewed_by", { who: by.map((r) => iso(r.person)).join(", ") }) }) : el("span", { class: "warn", text: t("not_reviewed") }),
          cert ? el("strong", { class: "certified", text: ` · ${t("certified_by", { who: iso(cert.person) })}` }) : null),
        el("div", { class: "actions" },
          can("review") && a.person !== me && !by.some((r) => r.person === me) && !certs.some((x) => x.refers === a.hash && x.person === me)
            ? act("memcon_review", "review") : null,
          can("certify") && !closed && a.person !== me && by.length && !by.some((r) => r.person === me) ? act("memcon_certify", "certify") : null));
    });
    // The link's languages (link.toml), the writer's own first if the link carries it.
    const tags = this.h.linkLanguages(c.link), own = tags.find((tag) => tag.toLowerCase().split("-")[0] === this.h.lang());
    const language = el("select", { id: "memcon-language", "aria-label": t("col_lang") },
      ...this.h.languageOptions(tags, own ?? tags[0]));
    const text = el("textarea", { id: "memcon-text", rows: 8 });
    const form = can("memcon") && !closed ? el("form", { class: "memcon-form", onsubmit: (e) => { e.preventDefault();
      run(async () => {
        await api("POST", base, { language: language.value, text: text.value });
        this.h.say(t("memcon_saved"), "info");
        await this.loadRecord();
      }, e.submitter); } },
    el("h4", { text: t("memcon_write") }), el("label", {}, `${t("col_lang")} `, language), text,
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", id: "memcon-save", text: t("memcon_save") }))) : null;
    return el("section", { class: "memcons" }, el("h3", { text: t("memcon_title") }),
      items.length ? el("ul", {}, items) : el("p", { class: "muted", text: t("memcon_none_yet") }),
      closed ? el("p", { class: "certified", text: t("memcon_closed") }) : null, form);
  }
}
