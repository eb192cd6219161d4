// The translators' queue (issue 15, item 15): the peer's messages that still need a translation,
// a review or a certification, most urgent first (FLASH before ROUTINE) and the oldest first
// within a precedence, as the station orders them (console/queue.py). A row opens the message,
// where the work is done. Strings from outside go through peer() (shown.js).

import { peer } from "./shown.js";

export const QUEUE_WORDS = {
  en: {
    nav_queue: "Translation", queue_title: "Translation queue",
    queue_intro: "Received messages waiting for a translation, a review or a certification: most urgent first, then oldest first.",
    queue_none: "Nothing waits for the translation desk.", queue_more: "The first {shown} of {total} are listed.",
    queue_counts: "{translation} to translate · {review} to review · {certification} to certify",
    col_needs: "Needs", needs_translation: "translation", needs_review: "review", needs_certification: "certification",
    col_received: "Received (UTC)",
    mark_translated: "translated ({n})", mark_translated_title: "Translations: {n}; still needs {needs}",
    mark_certified: "translation certified", mark_files: "files: {n}", mark_files_title: "Files sent with it: {n}",
    mark_needs: "needs {needs}",
  },
  ru: {
    nav_queue: "Перевод", queue_title: "Очередь переводов",
    queue_intro: "Полученные сообщения, которые ждут перевода, проверки или заверения: сначала самые срочные, затем самые давние.",
    queue_none: "Для отдела перевода ничего не ждёт.", queue_more: "Показаны первые {shown} из {total}.",
    queue_counts: "перевести: {translation} · проверить: {review} · заверить: {certification}",
    col_needs: "Нужно", needs_translation: "перевод", needs_review: "проверка", needs_certification: "заверение",
    col_received: "Получено (UTC)",
    mark_translated: "переведено ({n})", mark_translated_title: "Переводов: {n}; ещё нужно: {needs}",
    mark_certified: "перевод заверен", mark_files: "файлов: {n}", mark_files_title: "Файлов в сообщении: {n}",
    mark_needs: "нужно: {needs}",
  },
};

export class TranslatorQueue {
  // `ui`: the console's helpers (api, t, el, $, timeEl, word, openMessage).
  constructor(ui) {
    this.ui = ui;
    this.data = null;
  }

  async load(background = false) {
    this.data = await this.ui.api("GET", "/console/queue", null, background);
    this.render();
  }

  render() {
    const { t, el, $, timeEl, word, openMessage } = this.ui, d = this.data;
    const body = $("#queue-table tbody");
    if (!d) { body.replaceChildren(); return; }
    $("#queue-counts").textContent = t("queue_counts", d.counts ?? {});
    const more = $("#queue-more");
    more.hidden = d.total <= d.items.length;
    more.textContent = t("queue_more", { shown: d.items.length, total: d.total });
    $("#queue-none").hidden = d.items.length > 0;
    body.replaceChildren(...d.items.map((m) => {
      const row = el("tr", { "data-link": m.link, "data-lane": m.lane, "data-seq": m.seq, "data-needs": m.needs, tabindex: 0 },
        el("td", { class: `lane lane-${m.lane}`, text: m.lane }),
        el("td", { class: "num", text: String(m.seq) }),
        el("td", { text: m.link }),
        el("td", { class: "mono" }, peer(m.language)),
        el("td", {}, timeEl(m.received_ns)),
        el("td", {}, el("span", { class: `tag needs needs-${m.needs}`, text: t(`needs_${m.needs}`) })),
        el("td", { class: "short", lang: m.language || null }, peer(m.text)),
        el("td", { class: "muted" }, word("type_", m.type)));
      const open = () => openMessage({ ...m, direction: "in" });
      row.addEventListener("click", open);
      row.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.target === row) open(); });
      return row;
    }));
  }

  // Traffic's markers of a row: its files, and for a received message where it is at the desk.
  markers(m) {
    const { t, el } = this.ui, files = (m.attachments ?? []).length, out = [];
    if (files) out.push(el("span", { class: "tag mark-files", title: t("mark_files_title", { n: files }), text: t("mark_files", { n: files }) }));
    if (m.direction === "in" && m.translations > 0) {
      const needs = m.needs ? t(`needs_${m.needs}`) : null;
      out.push(el("span", { class: `tag mark-translated${m.needs ? "" : " certified"}`,
        title: needs ? t("mark_translated_title", { n: m.translations, needs }) : t("mark_certified"),
        text: m.needs ? t("mark_translated", { n: m.translations }) : t("mark_certified") }));
    } else if (m.direction === "in" && m.needs) {
      out.push(el("span", { class: "tag mark-untranslated", text: t("mark_needs", { needs: t(`needs_${m.needs}`) }) }));
    }
    return out.length ? el("div", { class: "markers" }, ...out) : null;
  }
}
