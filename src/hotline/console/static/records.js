// The records people search (issue 15, items 11, 12 and 18): the traffic of a link and the audit
// log, a page at a time, newest first, with "newer" and "older" pages and a text search, all
// done by the station (it reads a bounded number of rows a request); the audit's filters by
// person, action, link and time, and its CSV export; the times of a message, each named (sent,
// received, acknowledged). The audit rows come in words in both languages from the station
// (console/records.py), so this page and the CSV say the same; what is stored is in each
// cell's title.

export const RECORD_WORDS = {
  en: {
    search: "Search", clear: "Clear", search_traffic: "Text, file name or FLASH 3",
    newer: "← Newer", older: "Older →", newest: "Newest", page_of: "{n} shown",
    searching: "Messages that say “{q}”", searched_far: "No more found in the rows read: Older searches on",
    col_times: "Times (UTC)", when_sent: "sent", when_received: "received", when_acknowledged: "acknowledged",
    when_sent_theirs: "sent (their clock)", all: "all", audit_since: "From (UTC)", audit_until: "Until (UTC)",
    audit_export: "Export CSV", audit_none: "No rows match", audit_stored: "As stored: {v}",
    fact_sent_theirs: "Sent (by the sender's clock)", fact_acknowledged: "Acknowledged",
  },
  ru: {
    search: "Найти", clear: "Сбросить", search_traffic: "Текст, имя файла или FLASH 3",
    newer: "← Новее", older: "Старше →", newest: "Самые новые", page_of: "показано: {n}",
    searching: "Сообщения со словами «{q}»", searched_far: "В прочитанных строках больше нет: «Старше» ищет дальше",
    col_times: "Время (UTC)", when_sent: "отправлено", when_received: "получено", when_acknowledged: "подтверждено",
    when_sent_theirs: "отправлено (по их часам)", all: "все", audit_since: "С (UTC)", audit_until: "До (UTC)",
    audit_export: "Выгрузить CSV", audit_none: "Нет подходящих записей", audit_stored: "Как записано: {v}",
    fact_sent_theirs: "Отправлено (по часам отправителя)", fact_acknowledged: "Подтверждено",
  },
};

const PAGE = 50; // rows a page; the station allows up to 200

// ns (a string of digits) from a datetime-local value read as UTC; "" stays "".
function nsOf(value) {
  if (!value) return "";
  const ms = Date.parse(`${value}Z`);
  return Number.isNaN(ms) ? "" : `${ms}000000`;
}

export class Records {
  // d: { api, t, el, $, run, timeEl, utc, enc, lang, clockMark, reloadTraffic }
  constructor(d) {
    this.d = d;
    this.traffic = { q: "", cursor: { in: {}, out: {} } };
    this.audit = { page: null, ask: {}, cursor: {} };
  }

  // ---- Traffic ----

  resetTraffic() { this.traffic.cursor = { in: {}, out: {} }; }

  trafficPath(link, filters, lanes, types) {
    const p = new URLSearchParams({ limit: String(PAGE) });
    if (this.traffic.q) p.set("q", this.traffic.q);
    for (const side of ["in", "out"]) {
      for (const [k, v] of Object.entries(this.traffic.cursor[side])) p.set(`${side}_${k}`, String(v));
    }
    for (const v of lanes) if (!filters.lane.has(v)) p.append("hide_lane", v);
    for (const v of types) if (!filters.type.has(v)) p.append("hide_type", v);
    return `/console/traffic/${this.d.enc(link)}?${p}`;
  }

  renderTraffic(traffic) {
    const { t, $ } = this.d;
    const q = this.traffic.q;
    Object.assign($("#traffic-searching"), { hidden: !q, textContent: q ? t("searching", { q }) : "" });
    $("#traffic-q").placeholder = t("search_traffic");
    $("#traffic-q").setAttribute("aria-label", t("search_traffic"));
    for (const side of ["in", "out"]) {
      const paging = traffic?.paging?.[side] ?? {};
      const count = (traffic?.[side === "in" ? "inbox" : "outbox"] ?? []).length;
      this.pager($(`#${side === "in" ? "inbox" : "outbox"}-pager`), paging, count,
        Object.keys(this.traffic.cursor[side]).length > 0, (cursor) => {
          this.traffic.cursor[side] = cursor;
          this.d.run(this.d.reloadTraffic);
        });
    }
  }

  searchTraffic(q) {
    this.traffic.q = q.trim();
    this.resetTraffic();
    return this.d.reloadTraffic();
  }

  // "← Newer", "Older →" and "Newest" under a list; `go(cursor)` loads the page asked for.
  pager(box, paging, count, paged, go) {
    const { t, el } = this.d;
    const b = (key, cls, cursor, enabled) => el("button", { type: "button", class: `quiet ${cls}`, text: t(key),
      disabled: !enabled, onclick: () => go(cursor) });
    box.replaceChildren(
      b("newest", "page-newest", {}, paged),
      b("newer", "page-newer", { after: paging.newer }, paging.newer != null),
      el("span", { class: "muted", text: t("page_of", { n: count }) }),
      b("older", "page-older", { before: paging.older }, paging.older != null));
  }

  // The times of a message in the traffic list, each named: ours (received, or sent for ours),
  // the sender's own date when it reads differently, and when a person acknowledged it.
  times(m) {
    const { t, el, timeEl, utc, clockMark } = this.d;
    const line = (key, ns, ...more) => el("div", { class: "when", "data-when": key },
      el("span", { class: "when-label", text: t(`when_${key}`) }), " ", el("span", {}, timeEl(ns), ...more));
    const lines = [];
    if (m.direction === "in") {
      lines.push(line("received", m.received_ns));
      if (m.sent_ns != null && (m.clock_fault || utc(m.sent_ns) !== utc(m.received_ns))) {
        lines.push(line("sent_theirs", m.sent_ns, clockMark(m)));
      }
    } else {
      lines.push(line("sent", m.accepted_ns ?? m.sent_ns));
    }
    const a = m.acknowledgement;
    const acked = a ? (m.direction === "in" ? a.accepted_ns : a.received_ns) ?? a.sent_ns : null;
    if (acked != null) lines.push(line("acknowledged", acked));
    return el("div", { class: "times-grid" }, lines);
  }

  // ---- The audit log ----

  auditPath(extra = {}) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries({ ...this.audit.ask, ...extra })) if (v !== "" && v != null) p.set(k, String(v));
    return p;
  }

  async loadAudit(background = false) {
    const p = this.auditPath({ limit: PAGE, ...this.audit.cursor });
    this.audit.page = await this.d.api("GET", `/console/audit?${p}`, null, background);
    this.renderAudit();
  }

  readFilters() {
    const { $ } = this.d;
    this.audit.ask = { q: $("#audit-q").value.trim(), actor: $("#audit-actor").value, action: $("#audit-action").value,
      link: $("#audit-link").value, since_ns: nsOf($("#audit-since").value), until_ns: nsOf($("#audit-until").value) };
    this.audit.cursor = {};
  }

  clearFilters() {
    const { $ } = this.d;
    for (const id of ["#audit-q", "#audit-since", "#audit-until"]) $(id).value = "";
    for (const id of ["#audit-actor", "#audit-action", "#audit-link"]) $(id).value = "";
    this.audit.ask = {};
    this.audit.cursor = {};
  }

  renderAudit() {
    const { t, el, $, timeEl } = this.d, lang = this.d.lang();
    const page = this.audit.page;
    if (!page) return;
    const choose = (sel, options) => {
      const current = $(sel).value;
      $(sel).replaceChildren(el("option", { value: "", text: t("all") }),
        ...options.map(([value, text]) => el("option", { value, text })));
      $(sel).value = options.some(([v]) => v === current) ? current : "";
    };
    choose("#audit-actor", (page.actors ?? []).map((a) => [a.actor, a[lang] ?? a.actor]));
    choose("#audit-action", Object.entries(page.actions ?? {}).map(([a, w]) => [a, w[lang] ?? a])
      .sort((x, y) => x[1].localeCompare(y[1], lang)));
    choose("#audit-link", (page.links ?? []).map((l) => [l, l]));
    const stored = (v) => t("audit_stored", { v });
    const rows = (page.rows ?? []).map((r) => {
      const w = r.words?.[lang] ?? r.words?.en ?? {};
      return el("tr", { "data-audit-id": r.id, "data-action": r.action },
        el("td", { class: "mono", text: String(r.id) }), el("td", {}, timeEl(r.at_ns)),
        el("td", { text: w.actor ?? r.actor, title: stored(r.actor) }),
        el("td", { class: "audit-action", text: w.action ?? r.action, title: stored(r.action) }),
        el("td", { class: "mono audit-link", text: r.link ?? "" }),
        el("td", { class: "detail", text: w.detail ?? r.detail, title: r.detail ? stored(r.detail) : null }));
    });
    $("#audit-table tbody").replaceChildren(...rows);
    if (!rows.length) $("#audit-table tbody").append(el("tr", {}, el("td", { colspan: 6, class: "muted", text: t("audit_none") })));
    const q = this.audit.ask.q;
    const far = q && page.older != null && rows.length < (page.limit ?? PAGE);
    Object.assign($("#audit-searching"), { hidden: !far, textContent: far ? t("searched_far") : "" });
    this.pager($("#audit-pager"), page, rows.length, Object.keys(this.audit.cursor).length > 0, (cursor) => {
      this.audit.cursor = cursor;
      this.d.run(() => this.loadAudit());
    });
    const exported = this.auditPath({ lang });
    $("#audit-export").href = `/console/audit.csv?${exported}`;
  }
}
