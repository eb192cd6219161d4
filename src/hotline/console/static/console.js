// The Hotline operator console. The station keeps and enforces everything; this module only shows
// it and sends the operator's decisions back. No framework and no build step: the page runs under
// a strict CSP, so the DOM is built with createElement and every foreign text goes in textContent,
// and a string from outside (a message, a file name, a language tag, a name) through peer(): an
// isolated <bdi>, its invisible characters and mixed-script words shown (shown.js).

import { CALL_WORDS, CallLog } from "./calls.js";
import { Phone } from "./phone.js";
import { QUEUE_WORDS, TranslatorQueue } from "./queue.js";
import { RECORD_WORDS, Records } from "./records.js";
import { isolated, peer, shown as plainShown } from "./shown.js";

// ---- Words: every string of the console's own, in both languages, in one place. ----
const WORDS = {
  en: {
    title: "Hotline console", console: "console", login_name: "Name", login_password: "Password",
    login_code: "Code from the authenticator", login_submit: "Sign in", login_wrong: "Wrong name, password or code",
    login_locked: "Held for new devices after wrong codes: sign in where you signed in before, or ask an admin to reset the account",
    login_flash: "FLASH message waiting: sign in to read and acknowledge it", login_expired: "The session has ended: sign in again",
    lang_other: "Русский", logout: "Log out", nav_board: "Board", nav_traffic: "Traffic", nav_compose: "Compose",
    nav_drafts: "Drafts", nav_shiftlog: "Shift log", nav_audit: "Audit", nav_operators: "Operators", conn_ok: "live",
    conn_lost: "connection lost", conn_connecting: "connecting…",
    sound_hint: "Sound is off: click anywhere to enable it", role_operator: "operator", role_supervisor: "supervisor",
    role_translator: "translator", role_auditor: "auditor", role_admin: "administrator", state_UP: "UP",
    state_DEGRADED: "DEGRADED", state_DOWN: "DOWN", since: "since", peer: "peer station {peer}", never: "never",
    no_links: "No links configured", col_path: "Path", col_state: "State", col_since: "Since", col_rtt: "RTT, ms",
    col_offset: "Clock offset, ms", col_history: "RTT, last hour",
    stale: "stale", stale_title: "Last measured while the path was up; not current", down_reason: "Why: {reason}",
    spark_title: "RTT over the last hour: {min}–{max} ms", last_test: "Last hourly test",
    last_peer_test: "Last test from the peer", unreceipted: "Unreceipted", receipt: "receipt",
    test_waiting: "waiting for its receipt", test_passed: "passed", test_late: "receipted late", test_failed: "failed",
    level: "level {n}",
    alarms_title: "Active alarms", no_alarms: "No active alarms", raised: "raised", kind_flash: "FLASH message",
    kind_link_down: "Link down", kind_path_down: "Path down", kind_test_failed: "Test failed",
    kind_test_missing: "Test missing", kind_overdue: "Overdue message", silence: "Silence", silenced: "silenced",
    banner: "Alarms: {n}. Newest: {text}", unit_s: "s", unit_min: "min", unit_h: "h", unit_d: "d", ago: "{v} ago",
    in: "in {v}", just_now: "just now", col_link: "Link", col_lane: "Precedence", col_seq: "No.", col_type: "Type",
    col_lang: "Language", col_time: "Time (UTC)", col_text: "Text", col_journey: "Journey", inbox: "Inbox",
    outbox: "Outbox", nothing: "Nothing to show", step_accepted: "accepted", step_receipted: "held by peer station",
    step_received: "received", step_acknowledged: "acknowledged by a person", overdue: "overdue", ack: "Acknowledge",
    acked: "{lane} {seq} acknowledged", no_gaps: "No gaps: {list}",
    gaps_missing: "GAPS — missing {list} (have {ranges})", no_messages: "No messages yet", and_more: "… and {n} more",
    dir_in: "incoming", dir_out: "outgoing", type_principal: "principal", type_service: "service", type_test: "test",
    type_exercise: "exercise", type_acknowledgement: "acknowledgement", type_call_record: "call record", exercise_tag: "EXERCISE",
    exercise_banner: "EXERCISE — EXERCISE — EXERCISE", exercise_start: "Start an exercise",
    exercise_end: "End the exercise", back: "← Back to traffic", hash: "Hash", sent: "Sent",
    deadline: "Deadline", verified: "✓ Signature verified by the station", translations: "Translations",
    translations_none: "None yet.", compose_title: "New message",
    send: "Send", check_count: "{c} characters, {b} of 32768 bytes", warn_empty: "The text is empty",
    warn_space: "Whitespace at the start or end of the text",
    warn_mixed: "Latin and Cyrillic letters mixed within a word: {words}",
    warn_long: "Too long: the limit is 32768 bytes", check_ok: "No problems found", sent_as: "Sent as {lane} {seq}",
    waiting: "Waiting for a supervisor's release (draft {id})", draft_state: "Draft {id}: {state}",
    drafts_title: "Drafts waiting for release", no_drafts: "No drafts waiting", drafted_by: "by {who}",
    release: "Release", reject: "Reject", two_person: "Two-person rule: another supervisor must release this",
    released_as: "Released as {lane} {seq}", rejected: "Draft {id} rejected", shift_new: "New note",
    withdraw: "Withdraw", withdrawn: "Draft {id} withdrawn", reject_reason: "Reason (shown to the author)",
    reject_needs_reason: "Say why it is rejected: the reason is shown to its author", rejected_by: "Rejected by {who}: ",
    draft_rejected_notice: "Your draft {id} was rejected by {who}: {reason}",
    handover: "Handover note", shift_submit: "Add note", no_notes: "No notes yet", handover_tag: "HANDOVER",
    audit_title: "Audit log", col_actor: "Who", col_action: "Action", col_detail: "Detail", col_name: "Name",
    col_role: "Role", col_status: "Status", status_active: "active", status_disabled: "disabled",
    status_locked: "locked until", disable: "Disable", enable: "Enable", reset: "Reset",
    confirm_disable: "Disable {name}?",
    confirm_reset: "Reset {name}? Their password and TOTP secret stop working at once, and you get a one-time enrolment code for them.",
    op_add_title: "Add an operator", op_submit: "Add",
    op_added: "Operator {name} added", op_updated: "Operator {name} updated",
    secret_warning: "Shown only once.", secret_for: "Enrolment code for {name}",
    code_hint: "Hand this code to {name} yourself or by phone, not by e-mail. They open this console, choose “Enrol”, and there choose their password and receive their TOTP secret: you never see either. It works once, until {until}; its use is in the audit log.",
    status_enrolling: "waiting for enrolment until", status_unenrolled: "not enrolled: reset it for a new code",
    status_new: "new: cannot release until",
    totp_secret: "TOTP secret", totp_uri: "TOTP URI", dismiss: "I have handed it over",
    totp_qr_alt: "QR code of the TOTP secret: scan it with your authenticator app",
    confirm_role: "Make {name} {role}? Their permissions change at once: they sign in again.",
    login_enrol: "New or reset account? Enrol with your code", enrol_title: "Enrol",
    enrol_intro: "With the one-time code an administrator gave you: choose your password, then add the TOTP secret shown here to your authenticator app. Nobody else sees either.",
    enrol_code: "Enrolment code", enrol_password: "Choose a password (at least 12 characters)",
    enrol_password2: "The password again", enrol_totp: "The code your authenticator now shows",
    enrol_continue: "Continue", enrol_finish: "Finish and sign in", enrol_back: "Back to sign-in",
    enrol_wrong: "Wrong name or enrolment code, or the code has expired or been used: ask an administrator for a new one",
    enrol_mismatch: "The two passwords differ",
    enrol_secret_warning: "Add this to your authenticator app now (scan the QR code, or type the secret in): it is shown only here, only once.",
    flash_sub: "Incoming FLASH message: acknowledge it", received: "received",
    alarms_more: "and {n} more", flash_loading: "(loading the text…)",
    flash_more: "{n} more FLASH message(s) waiting", flash_silenced: "Sound off: this stays until acknowledged",
    err_http: "Error {status}: {detail}", err_network: "Cannot reach the station",
    err_forbidden: "Not allowed for your role", err_bad_event: "Unreadable update from the station",
    files: "Files", file_held: "held whole", file_waiting: "{held} of {size}", file_download: "Download",
    uploading: "uploading {name}", uploaded: "{name}: ready to send", machine: "Machine draft",
    machine_by: "MACHINE DRAFT — {engine}; not checked by a person", machine_ask: "Ask the engine ({engine})",
    use_draft: "Start from this draft", translate_title: "Your translation", translate_save: "Save translation",
    translated_by: "translated by {who} ({role})", reviewed_by: "reviewed by {who}", certified_by: "CERTIFIED by {who}",
    not_reviewed: "not yet reviewed", review: "Mark as reviewed", certify: "Certify", target: "Into",
    glossary: "Glossary of this link", glossary_add: "Add term", glossary_none: "No terms yet",
    term_source: "Term", term_target: "Rendered as", delete: "Remove", remark: "Remark (optional)",
    call_incoming: "Incoming call", call_answer: "Answer", call_decline: "Decline", call_end: "Hang up",
    call_place: "Call", call_mute: "Mute", call_unmute: "Unmute", call_muted: "muted", call_transport: "Transport",
    call_recorded: "RECORDED", call_recorded_notice: "This call is recorded", call_ringing_out: "ringing…",
    call_state_inviting: "calling", call_state_ringing_out: "ringing", call_state_ringing_in: "ringing",
    call_state_active: "in call", call_state_ended: "ended", call_role_principal: "principal",
    call_role_interpreter: "interpreter", call_role_listener: "listener",
    call_path: "path {path}: loss {loss}%, jitter {jitter} ms, RTT {rtt} ms", login_ringing: "A call is ringing: sign in to answer it",
    call_in_progress: "Call in progress", call_leave: "Leave the call", call_join_interpreter: "Join as interpreter", call_join_listener: "Join as listener",
    kind_certificate: "Console certificate expiring",
    kind_failover: "This side failed over", kind_peer_failover: "The peer failed over", state_STANDBY: "STANDBY",
    kind_clock_fault: "Clock fault", clock_fault: "clock fault", at_received: "Received", at_accepted: "Accepted",
    clock_fault_title: "Dated {when} by the sender's clock: further from this station's clock than allowed, not to be believed",
    // Issue 15, items 1, 2, 7 and 8.
    ack_hold: "Hold to acknowledge", ack_hold_hint: "Press and hold the button until it fills (or move to it with Tab and hold Space). A click does not acknowledge.",
    acks_ref: "→ {lane} {seq}: ", ack_title: "Acknowledgement", ack_by_peer: "Acknowledged at the peer station",
    ack_by_us: "Acknowledged here", ack_envelope: "Carried as", ack_unlisted: "Acknowledged (the acknowledgement is not found in this station's record)",
    waiting_receipted: "not yet held by peer station", late_receipted: "not yet held by peer station: late",
    waiting_acknowledged: "awaiting acknowledgement", late_acknowledged: "acknowledgement overdue",
    drafted_by_label: "Drafted by", released_by_label: "Released by", sent_by_label: "Sent by",
    by_api: "the station's API (not drafted in the console)", by_station: "the station itself",
  },
  ru: {
    call_incoming: "Входящий звонок", call_answer: "Ответить", call_decline: "Отклонить", call_end: "Положить трубку",
    call_place: "Позвонить", call_mute: "Выключить микрофон", call_unmute: "Включить микрофон", call_muted: "микрофон выключен",
    call_transport: "Канал", call_recorded: "ЗАПИСЬ", call_recorded_notice: "Этот звонок записывается",
    call_ringing_out: "вызов…", call_state_inviting: "вызов", call_state_ringing_out: "звонит",
    call_state_ringing_in: "звонит", call_state_active: "разговор", call_state_ended: "завершён",
    call_role_principal: "первое лицо", call_role_interpreter: "переводчик", call_role_listener: "слушатель",
    call_path: "путь {path}: потери {loss}%, джиттер {jitter} мс, RTT {rtt} мс", login_ringing: "Звонок: войдите, чтобы ответить",
    call_in_progress: "Идёт разговор", call_leave: "Выйти из разговора", call_join_interpreter: "Войти как переводчик", call_join_listener: "Войти как слушатель",
    title: "Консоль Hotline", console: "консоль", login_name: "Имя", login_password: "Пароль",
    login_code: "Код из приложения-аутентификатора", login_submit: "Войти",
    login_wrong: "Неверное имя, пароль или код", login_locked: "Вход с новых устройств приостановлен после неверных кодов: войдите там, где входили раньше, или попросите администратора сбросить учётную запись",
    login_flash: "Поступило сообщение FLASH: войдите, чтобы прочитать и подтвердить его",
    login_expired: "Сеанс завершён: войдите снова", lang_other: "English", logout: "Выйти", nav_board: "Табло",
    nav_traffic: "Обмен", nav_compose: "Написать", nav_drafts: "Черновики", nav_shiftlog: "Журнал смены",
    nav_audit: "Аудит", nav_operators: "Операторы", conn_ok: "на связи", conn_lost: "соединение потеряно",
    conn_connecting: "подключение…", sound_hint: "Звук выключен: щёлкните в любом месте страницы, чтобы включить",
    role_operator: "оператор", role_supervisor: "руководитель смены", role_translator: "переводчик",
    role_auditor: "аудитор", role_admin: "администратор", state_UP: "В РАБОТЕ", state_DEGRADED: "НЕУСТОЙЧИВО",
    state_DOWN: "НЕТ СВЯЗИ", since: "с", peer: "ответная станция {peer}", never: "не было",
    no_links: "Линии не настроены", col_path: "Путь", col_state: "Состояние", col_since: "С момента",
    col_rtt: "RTT, мс", col_offset: "Расхождение часов, мс", col_history: "RTT за последний час",
    stale: "устарело", stale_title: "Измерено, когда путь работал; не текущее значение", down_reason: "Причина: {reason}",
    spark_title: "RTT за последний час: {min}–{max} мс", last_test: "Последняя ежечасная проверка",
    last_peer_test: "Последняя проверка от ответной станции", unreceipted: "Без квитанции", receipt: "квитанция",
    test_waiting: "ждёт квитанции", test_passed: "прошла", test_late: "квитанция пришла с опозданием",
    test_failed: "не прошла", level: "уровень {n}", alarms_title: "Активные тревоги", no_alarms: "Активных тревог нет",
    raised: "возникла", kind_flash: "Сообщение FLASH", kind_link_down: "Линия недоступна",
    kind_path_down: "Путь недоступен", kind_test_failed: "Проверка не прошла",
    kind_test_missing: "Проверка не поступила", kind_overdue: "Просроченное сообщение", silence: "Выключить звук",
    silenced: "звук выключен", banner: "Тревог: {n}. Последняя: {text}", unit_s: "с", unit_min: "мин", unit_h: "ч",
    unit_d: "дн.", ago: "{v} назад", in: "через {v}", just_now: "только что", col_link: "Линия",
    col_lane: "Срочность", col_seq: "№", col_type: "Тип", col_lang: "Язык", col_time: "Время (UTC)",
    col_text: "Текст", col_journey: "Прохождение", inbox: "Входящие", outbox: "Исходящие", nothing: "Нет данных",
    step_accepted: "принято станцией", step_receipted: "у ответной станции", step_received: "получено",
    step_acknowledged: "подтверждено получателем", overdue: "просрочено", ack: "Подтвердить получение",
    acked: "Получение {lane} {seq} подтверждено", no_gaps: "Пропусков нет: {list}",
    gaps_missing: "ПРОПУСКИ — не хватает: {list} (есть: {ranges})", no_messages: "Сообщений пока нет",
    and_more: "… и ещё {n}", dir_in: "входящее", dir_out: "исходящее", type_principal: "основное",
    type_service: "служебное", type_test: "проверочное", type_exercise: "учебное",
    type_acknowledgement: "подтверждение", type_call_record: "запись о звонке", exercise_tag: "УЧЕНИЯ", exercise_banner: "УЧЕНИЯ — УЧЕНИЯ — УЧЕНИЯ",
    exercise_start: "Начать учения", exercise_end: "Завершить учения",
    back: "← К обмену", hash: "Хеш", sent: "Отправлено", deadline: "Срок", verified: "✓ Подпись проверена станцией",
    translations: "Переводы", translations_none: "Пока нет.",
    compose_title: "Новое сообщение", send: "Отправить", check_count: "Символов: {c}, байт: {b} из 32768",
    warn_empty: "Текст пуст", warn_space: "Пробелы в начале или в конце текста",
    warn_mixed: "Латиница и кириллица смешаны в одном слове: {words}",
    warn_long: "Слишком длинный текст: предел — 32768 байт", check_ok: "Замечаний нет",
    sent_as: "Отправлено как {lane} {seq}", waiting: "Ждёт разрешения руководителя смены (черновик {id})",
    draft_state: "Черновик {id}: {state}", drafts_title: "Черновики, ожидающие разрешения",
    no_drafts: "Ожидающих черновиков нет", drafted_by: "автор: {who}", release: "Разрешить отправку",
    reject: "Отклонить", two_person: "Правило двух лиц: отправку должен разрешить другой руководитель смены",
    released_as: "Отправка разрешена: {lane} {seq}", rejected: "Черновик {id} отклонён", shift_new: "Новая запись",
    withdraw: "Отозвать", withdrawn: "Черновик {id} отозван", reject_reason: "Причина (её увидит автор)",
    reject_needs_reason: "Укажите причину отклонения: её увидит автор черновика", rejected_by: "Отклонил(а) {who}: ",
    draft_rejected_notice: "Ваш черновик {id} отклонил(а) {who}: {reason}",
    handover: "Запись при передаче смены", shift_submit: "Добавить запись", no_notes: "Записей пока нет",
    handover_tag: "ПЕРЕДАЧА СМЕНЫ", audit_title: "Журнал аудита", col_actor: "Кто", col_action: "Действие",
    col_detail: "Подробности", col_name: "Имя", col_role: "Роль", col_status: "Статус", status_active: "активна",
    status_disabled: "отключена", status_locked: "заблокирована до", disable: "Отключить", enable: "Включить",
    reset: "Сбросить доступ", confirm_disable: "Отключить {name}?",
    confirm_reset: "Сбросить доступ {name}? Пароль и секрет TOTP сразу перестанут действовать, а вы получите для этого человека одноразовый код регистрации.",
    op_add_title: "Добавить оператора", op_submit: "Добавить",
    op_added: "Оператор {name} добавлен", op_updated: "Данные оператора {name} изменены",
    secret_warning: "Показывается только один раз.", secret_for: "Код регистрации: {name}",
    code_hint: "Передайте этот код {name} лично или по телефону, не по электронной почте. Человек открывает эту консоль, выбирает «Регистрация» и там выбирает пароль и получает секрет TOTP: вы не видите ни того, ни другого. Код действует один раз, до {until}; его использование записывается в журнал аудита.",
    status_enrolling: "ожидает регистрации до", status_unenrolled: "не зарегистрирована: сбросьте доступ, чтобы выдать новый код",
    status_new: "новая: не может разрешать отправку до",
    totp_secret: "Секрет TOTP", totp_uri: "URI для TOTP", dismiss: "Код передан",
    totp_qr_alt: "QR-код секрета TOTP: отсканируйте его приложением-аутентификатором",
    confirm_role: "Назначить {name} роль «{role}»? Права изменятся сразу: человеку нужно будет войти снова.",
    login_enrol: "Новая или сброшенная учётная запись? Регистрация по коду", enrol_title: "Регистрация",
    enrol_intro: "С одноразовым кодом, полученным от администратора: выберите пароль, затем добавьте показанный здесь секрет TOTP в приложение-аутентификатор. Никто другой не видит ни того, ни другого.",
    enrol_code: "Код регистрации", enrol_password: "Выберите пароль (не короче 12 символов)",
    enrol_password2: "Пароль ещё раз", enrol_totp: "Код, который сейчас показывает аутентификатор",
    enrol_continue: "Далее", enrol_finish: "Завершить и войти", enrol_back: "Назад ко входу",
    enrol_wrong: "Неверное имя или код регистрации, либо код истёк или уже использован: попросите у администратора новый",
    enrol_mismatch: "Пароли не совпадают",
    enrol_secret_warning: "Добавьте это в приложение-аутентификатор сейчас (отсканируйте QR-код или введите секрет вручную): он показывается только здесь и только один раз.",
    flash_sub: "Входящее сообщение FLASH: подтвердите получение", received: "получено",
    alarms_more: "и ещё {n}", flash_loading: "(текст загружается…)",
    flash_more: "Ещё ждут подтверждения сообщений FLASH: {n}",
    flash_silenced: "Звук выключен: окно останется до подтверждения получения", err_http: "Ошибка {status}: {detail}",
    err_network: "Нет связи со станцией", err_forbidden: "Вашей роли это не разрешено",
    err_bad_event: "Станция прислала нечитаемое обновление",
    files: "Файлы", file_held: "получен полностью", file_waiting: "{held} из {size}", file_download: "Скачать",
    uploading: "загрузка: {name}", uploaded: "{name}: готов к отправке", machine: "Машинный черновик",
    machine_by: "МАШИННЫЙ ЧЕРНОВИК — {engine}; человеком не проверен", machine_ask: "Запросить черновик ({engine})",
    use_draft: "Взять за основу", translate_title: "Ваш перевод", translate_save: "Сохранить перевод",
    translated_by: "перевёл(а) {who} ({role})", reviewed_by: "проверил(а) {who}", certified_by: "ЗАВЕРЕНО: {who}",
    not_reviewed: "ещё не проверен", review: "Отметить как проверенный", certify: "Заверить", target: "На язык",
    glossary: "Глоссарий линии", glossary_add: "Добавить термин", glossary_none: "Терминов пока нет",
    term_source: "Термин", term_target: "Передаётся как", delete: "Удалить", remark: "Замечание (необязательно)",
    kind_certificate: "Сертификат консоли истекает",
    kind_failover: "Сторона переключилась на другой узел", kind_peer_failover: "Сторона партнёра переключилась на другой узел", state_STANDBY: "РЕЗЕРВ",
    kind_clock_fault: "Сбой часов", clock_fault: "сбой часов", at_received: "Получено", at_accepted: "Принято",
    clock_fault_title: "По часам отправителя {when}: расходится с часами станции больше допустимого, верить нельзя",
    ack_hold: "Удерживайте, чтобы подтвердить", ack_hold_hint: "Нажмите кнопку и удерживайте, пока она не заполнится (или перейдите к ней клавишей Tab и удерживайте пробел). Щелчок не подтверждает получение.",
    acks_ref: "→ {lane} {seq}: ", ack_title: "Подтверждение получения", ack_by_peer: "Подтверждено на ответной станции",
    ack_by_us: "Подтверждено здесь", ack_envelope: "Передано как", ack_unlisted: "Подтверждено (само подтверждение в записи станции не найдено)",
    waiting_receipted: "ещё не у ответной станции", late_receipted: "ещё не у ответной станции: опаздывает",
    waiting_acknowledged: "ждёт подтверждения", late_acknowledged: "подтверждение просрочено",
    drafted_by_label: "Составил(а)", released_by_label: "Разрешил(а) отправку", sent_by_label: "Отправил(а)",
    by_api: "API станции (не составлялось в консоли)", by_station: "сама станция",
  },
};
for (const lang of Object.keys(WORDS)) Object.assign(WORDS[lang], CALL_WORDS[lang]); // the calls page's (calls.js)
for (const lang of Object.keys(WORDS)) Object.assign(WORDS[lang], RECORD_WORDS[lang]); // search and pages (records.js)
// Issue 15: the link's languages and withdrawn translations (item 10), the translators' queue (15).
const DESK_WORDS = {
  en: {
    withdraw_translation: "Withdraw", withdraw_reason: "Why withdraw it (the wrong language, say)",
    withdraw_needs_reason: "Say why the translation is withdrawn", withdrawn_by: "WITHDRAWN by {who}: ",
    translation_withdrawn: "Translation withdrawn: it stays in the record, marked as withdrawn",
    seq_legend: "No.: a message's place in its precedence's numbering on this link, each station its own. Acknowledgements and link tests are numbered too, so a first message may be ROUTINE 2.",
    seq_title_in: "{lane} {seq}: envelope number {seq} in the {lane} lane of the peer's chain on link {link} (acknowledgements and link tests are numbered in their lanes too)",
    seq_title_out: "{lane} {seq}: envelope number {seq} in the {lane} lane of this station's chain on link {link} (acknowledgements and link tests are numbered in their lanes too)",
  },
  ru: {
    withdraw_translation: "Отозвать", withdraw_reason: "Почему перевод отзывается (например, не тот язык)",
    withdraw_needs_reason: "Укажите, почему перевод отзывается", withdrawn_by: "ОТОЗВАН: {who}: ",
    translation_withdrawn: "Перевод отозван: он остаётся в записи с пометкой об отзыве",
    seq_legend: "№: место сообщения в нумерации его срочности на этой линии, у каждой станции своей. Подтверждения и проверки линии тоже получают номера, поэтому первое сообщение может быть ROUTINE 2.",
    seq_title_in: "{lane} {seq}: конверт № {seq} в полосе {lane} цепочки ответной станции на линии {link} (подтверждения и проверки линии тоже нумеруются в своих полосах)",
    seq_title_out: "{lane} {seq}: конверт № {seq} в полосе {lane} цепочки этой станции на линии {link} (подтверждения и проверки линии тоже нумеруются в своих полосах)",
  },
};
for (const lang of Object.keys(WORDS)) Object.assign(WORDS[lang], DESK_WORDS[lang], QUEUE_WORDS[lang]);

// ---- State: one object, so that a language switch can re-render everything from it. ----
const LANES = ["FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE"];
const ROLES = ["operator", "supervisor", "translator", "auditor", "admin"];
const TYPES = ["principal", "service", "test", "exercise", "acknowledgement"];
// An acknowledgement is shown on the message it acknowledges; in the lists only when asked for.
const HIDDEN_TYPES = ["acknowledgement"];
const STEPS = { out: ["accepted", "receipted", "acknowledged"], in: ["received", "acknowledged"] };
const NEEDS = { board: "view", traffic: "view", message: "view", compose: "draft", drafts: "view",
  shiftlog: "view", audit: "audit", operators: "admin", calls: "view", call: "view", queue: "translate" };
const MAX_TEXT_BYTES = 32768; // the envelope's limit, in UTF-8 bytes
const HOUR_NS = 3600e9;
const S = {
  lang: navigator.language?.startsWith("ru") ? "ru" : "en", me: null, board: null, view: "board", link: "",
  traffic: null, open: null, drafts: [], notes: [], audit: [], operators: [], lastDraft: null, seen: null,
  filters: { lane: new Set(LANES), type: new Set(TYPES.filter((v) => !HIDDEN_TYPES.includes(v))) }, es: null, lastEvent: 0, retry: 0, flashId: null,
  detail: null, glossary: [], uploads: [],
};
const PREVIEW = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]); // the station serves these inline

// ---- Helpers: words, DOM building, time. ----
const $ = (sel) => document.querySelector(sel);
const enc = (v) => encodeURIComponent(String(v));
const can = (perm) => !!S.me?.permissions?.includes(perm);
const lc = (v) => String(v ?? "").toLowerCase();

function t(key, params = {}) {
  const s = WORDS[S.lang][key] ?? WORDS.en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => String(params[k] ?? ""));
}

// An enumerated value from the station: in words when we know it, as it came when we do not.
const word = (prefix, value) => (WORDS.en[prefix + value] ? t(prefix + value) : String(value ?? "—"));

// Build an element. Children that are strings become text nodes, never markup.
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  e.append(...children.flat(Infinity).filter((c) => c != null));
  return e;
}

function svg(tag, attrs = {}) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

// Nanoseconds may exceed 2^53: Number() loses a few hundred ns, which no one will ever see.
const nsToMs = (ns) => Number(ns) / 1e6;

function utc(ns) {
  const d = new Date(nsToMs(ns));
  return Number.isNaN(d.getTime()) ? "—" : d.toISOString().slice(0, 19).replace("T", " ");
}

function relative(ns) {
  const diff = Math.round((Date.now() - nsToMs(ns)) / 1000), s = Math.abs(diff);
  if (s < 5) return t("just_now");
  const v = s < 60 ? `${s} ${t("unit_s")}` : s < 3600 ? `${Math.floor(s / 60)} ${t("unit_min")}`
    : s < 172800 ? `${Math.floor(s / 3600)} ${t("unit_h")}` : `${Math.floor(s / 86400)} ${t("unit_d")}`;
  return t(diff < 0 ? "in" : "ago", { v });
}

// A <time> that the clock tick keeps fresh: "x min ago" must not go stale on a quiet night.
function timeEl(ns, empty = "—") {
  if (ns == null || Number.isNaN(Number(ns))) return el("span", { class: "muted", text: empty });
  return el("time", { "data-ns": String(ns), title: `${utc(ns)} UTC` },
    el("span", { text: utc(ns) }), " ", el("span", { class: "ago", text: `(${relative(ns)})` }));
}

// Only spaces, tabs and newlines are folded: JavaScript's \s would also swallow a BOM or a line
// separator, which peer() must show.
const short = (text) => {
  const s = String(text ?? "").replace(/[ \t\n]+/g, " ").replace(/^ | $/g, "");
  const chars = [...s]; // by code point: a cut pair of surrogates would show as a mark
  return chars.length > 80 ? `${chars.slice(0, 79).join("")}…` : s;
};
const num = (v) => (v == null ? "—" : Number(v).toFixed(Math.abs(v) < 10 ? 1 : 0));
const tag = (key, cls = "tag") => el("span", { class: cls, text: t(key) });
const exerciseTag = (type) => (type === "exercise" ? tag("exercise_tag", "tag exercise-tag") : null);
const typeLabel = (type) => el("span", {}, word("type_", type), " ", exerciseTag(type));
const fact = (key, ...value) => [el("dt", { text: t(key) }), el("dd", {}, value)];
const button = (cls, key, onclick, attrs = {}) =>
  el("button", { type: "button", class: cls, text: t(key), onclick, ...attrs });
const phone = new Phone({ api, t, el, $, can, say, tone: (f, v) => tone(f, v), audioTime: () => A.ctx?.currentTime ?? 0 });
const queue = new TranslatorQueue({ api, t, el, $, timeEl, word, openMessage: (m) => openMessage(m) });
const callLog = new CallLog({ api, t, el, $, can, run, say, timeEl, word, button, show: (v) => show(v), enc,
  linkLanguages: (name) => linkLanguages(name), languageOptions: (tags, chosen) => languageOptions(tags, chosen),
  me: () => S.me, lang: () => S.lang });
const records = new Records({ api, t, el, $, run, timeEl, utc, enc, lang: () => S.lang, clockMark: (m) => clockMark(m),
  reloadTraffic: () => loadTraffic() });

// ---- Talking to the station: one function, so CSRF, 401 and errors are handled alike everywhere. ----
class HttpError extends Error {
  constructor(status, detail) { super(detail); this.status = status; this.detail = detail; }
}

// `background`: fetched because the station said something changed, not because a person did
// anything; the station does not count it as activity, so an unattended console still times out.
async function api(method, path, body, background = false) {
  const headers = { Accept: "application/json" };
  if (background) headers["X-Hotline-Background"] = "1";
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body ?? {});
    if (S.me?.csrf) headers["X-CSRF-Token"] = S.me.csrf;
  }
  let r;
  try { r = await fetch(path, init); } catch { throw new HttpError(0, t("err_network")); }
  const text = await r.text();
  let data = text;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON: keep the text as the detail */ }
  if (r.status === 401 && !path.startsWith("/console/login")) showLogin(S.me ? t("login_expired") : ""); // enrolment too
  if (!r.ok) throw new HttpError(r.status, detailOf(data) || r.statusText);
  return data;
}

function detailOf(data) {
  const d = data && typeof data === "object" ? data.detail : data;
  return d == null ? "" : typeof d === "string" ? d : JSON.stringify(d);
}

function describe(e) {
  if (e.status === 0) return t("err_network");
  if (e.status === 403) return `${t("err_forbidden")}${e.detail ? ` (${e.detail})` : ""}`;
  return e.status ? t("err_http", { status: e.status, detail: e.detail }) : String(e.message ?? e);
}

// The message line: errors stay until clicked away, confirmations fade.
function say(text, kind = "error") {
  const line = $("#message-line");
  clearTimeout(say.timer);
  Object.assign(line, { textContent: text, className: kind, hidden: !text });
  if (text && !["error", "notice"].includes(kind)) say.timer = setTimeout(() => { line.hidden = true; }, 8000);
}

// An operator action: its button is disabled meanwhile, a failure is shown (a 401 has its own screen).
async function run(fn, button) {
  if (button) button.disabled = true;
  try { return await fn(); } catch (e) { if (e.status !== 401) say(describe(e)); } finally {
    if (button) button.disabled = false;
  }
}

// ---- Signing in and out. ----
// A console nobody is signed in to must still not miss a FLASH: the station tells anyone who can
// reach the console that one waits (never what it says), and the sign-in screen sounds.
function watchSignedOut() {
  const check = async () => {
    let flash = false, ringing = false;
    try {
      const r = await fetch("/console/alarm", { credentials: "same-origin" });
      flash = r.ok && (await r.json()).flash > 0;
      const c = await fetch("/console/ringing", { credentials: "same-origin" });
      ringing = c.ok && (await c.json()).ringing > 0;
    } catch { /* the station is unreachable: the sign-in form says so when used */ }
    $("#login-flash").hidden = !flash && !ringing;
    $("#login-flash").textContent = t(flash ? "login_flash" : "login_ringing");
    if (flash || ringing) startSiren(); else stopSiren();
  };
  clearInterval(S.signedOutWatch);
  S.signedOutWatch = setInterval(check, 2000);
  check();
}

async function doLogin(ev) {
  ev.preventDefault();
  const err = $("#login-error"), button = $("#login-submit");
  err.textContent = "";
  button.disabled = true;
  try {
    const body = { name: $("#login-name").value.trim(), password: $("#login-password").value,
      code: $("#login-code").value.trim() };
    S.me = await api("POST", "/console/login", body);
    $("#login-password").value = $("#login-code").value = "";
    await enter();
  } catch (e) {
    err.textContent = e.status === 401 ? t("login_wrong") : e.status === 423 ? t("login_locked") : describe(e);
  } finally { button.disabled = false; }
}

// After a sign-in, or a reload with a live session: who am I, what may I do; then go live.
async function enter() {
  S.me = await api("GET", "/console/me");
  clearInterval(S.signedOutWatch);
  if (WORDS[S.me.language]) S.lang = S.me.language;
  $("#compose-language").value = S.lang;
  $("#login").hidden = $("#enrol").hidden = true;
  $("#app").hidden = false;
  rerender();
  S.board = await api("GET", "/console/board");
  renderBoard();
  connectEvents();
  show("board");
  run(loadDrafts); // for the count on the nav button
  run(() => phone.refresh()); // a call ringing, or the one this page was in before a reload
}

// The login screen. After a session the page reloads instead, so nothing the last operator saw survives
// in memory or in the DOM; the reason and the language are carried over in sessionStorage.
function showLogin(reason) {
  if (S.me) {
    sessionStorage.setItem("hotline-login", JSON.stringify({ reason, lang: S.lang }));
    S.me = null;
    location.reload();
    return;
  }
  const carried = JSON.parse(sessionStorage.getItem("hotline-login") ?? "{}");
  sessionStorage.removeItem("hotline-login");
  if (WORDS[carried.lang]) S.lang = carried.lang;
  $("#login").hidden = false;
  applyWords();
  $("#login-error").textContent = reason || carried.reason || "";
  $("#login-name").focus();
  watchSignedOut();
  if (location.hash === "#enrol") showEnrol(true); // the address an admin may give with the code
}

// ---- Enrolment: a new or reset account's person takes it up with the one-time code an admin gave
// them; they choose the password here and the TOTP secret is shown here, to them only. ----
function showEnrol(open) {
  $("#login").hidden = open;
  $("#enrol").hidden = !open;
  S.enrolSecret = null;
  $("#enrol-step2").hidden = true;
  $("#enrol-secret").replaceChildren();
  $("#enrol-name").readOnly = $("#enrol-code").readOnly = false;
  $("#enrol-totp").required = false;
  $("#enrol-error").textContent = "";
  $("#enrol-submit").textContent = t("enrol_continue");
  (open ? $("#enrol-name") : $("#login-name")).focus();
}

async function doEnrol(ev) {
  ev.preventDefault();
  const err = $("#enrol-error"), button = $("#enrol-submit");
  const name = $("#enrol-name").value.trim(), code = $("#enrol-code").value.trim();
  err.textContent = "";
  if ($("#enrol-password").value !== $("#enrol-password2").value) { err.textContent = t("enrol_mismatch"); return; }
  button.disabled = true;
  try {
    if (!S.enrolSecret) {
      const r = await api("POST", "/console/login/enrol", { name, code });
      S.enrolSecret = r.totp_secret;
      $("#enrol-secret").replaceChildren(tag("enrol_secret_warning", "warn"),
        el("img", { class: "qr", id: "enrol-qr", src: r.totp_qr, alt: t("totp_qr_alt"), width: 224, height: 224 }),
        el("dl", { class: "facts" },
        fact("totp_uri", el("span", { class: "mono", text: r.totp_uri })),
        fact("totp_secret", el("span", { class: "mono", text: r.totp_secret }))));
      $("#enrol-step2").hidden = false;
      $("#enrol-name").readOnly = $("#enrol-code").readOnly = true;
      $("#enrol-totp").required = true;
      $("#enrol-submit").textContent = t("enrol_finish");
      $("#enrol-totp").focus();
      return;
    }
    const body = { name, code, password: $("#enrol-password").value, totp_code: $("#enrol-totp").value.trim() };
    S.me = await api("POST", "/console/login/enrol/finish", body);
    for (const id of ["#enrol-code", "#enrol-password", "#enrol-password2", "#enrol-totp"]) $(id).value = "";
    S.enrolSecret = null;
    $("#enrol-secret").replaceChildren();
    history.replaceState(null, "", location.pathname);
    await enter();
  } catch (e) {
    err.textContent = e.status === 401 ? t("enrol_wrong") : describe(e);
  } finally { button.disabled = false; }
}

async function logout() {
  try { await api("POST", "/console/logout"); } finally { showLogin(""); }
}

async function switchLang() {
  const next = S.lang === "en" ? "ru" : "en";
  await api("PUT", "/console/me/language", { language: next });
  S.me.language = S.lang = next;
  rerender();
}

// ---- Live updates. The board comes every few seconds, so a long silence means a dead stream. ----
function connectEvents() {
  closeEvents();
  const es = new EventSource("/console/events");
  Object.assign(S, { es, lastEvent: Date.now() });
  setConn("connecting");
  const alive = () => { S.lastEvent = Date.now(); setConn("ok"); };
  es.onopen = alive;
  es.onerror = () => {
    setConn("lost");
    if (es.readyState === EventSource.CLOSED) retryEvents(); // the browser gave up (a 401?): find out why
  };
  es.addEventListener("board", (e) => {
    alive();
    try { S.board = JSON.parse(e.data); } catch { say(t("err_bad_event")); return; }
    renderBoard();
  });
  es.addEventListener("message", () => {
    alive();
    if (["traffic", "message"].includes(S.view)) run(() => loadTraffic(true));
    if (S.view === "queue") run(() => queue.load(true)); // a message came in
    if (S.view === "calls") run(() => callLog.load(true)); // a call record was receipted
  });
  es.addEventListener("draft", () => { alive(); run(() => load("drafts", true)); });
  es.addEventListener("draft_notice", (e) => { alive(); try { draftNotice(JSON.parse(e.data)); } catch { say(t("err_bad_event")); } });
  es.addEventListener("detail", () => {
    alive();
    if (S.view === "message") run(() => loadDetail(true));
    if (S.view === "queue") run(() => queue.load(true)); // a translation was signed
    if (S.view === "call") run(() => callLog.loadRecord(true)); // a memcon was signed
  });
  for (const kind of ["call", "call_stats"]) {
    es.addEventListener(kind, (e) => { alive(); try { phone.onEvent(JSON.parse(e.data)); } catch { say(t("err_bad_event")); } });
  }
  es.addEventListener("call", () => { if (S.view === "calls") setTimeout(() => run(() => callLog.load(true)), 800); });
}

function closeEvents() {
  clearTimeout(S.retry);
  S.es?.close();
  S.es = null;
}

function retryEvents() {
  clearTimeout(S.retry);
  S.retry = setTimeout(async () => {
    try { await api("GET", "/console/me"); connectEvents(); } catch (e) { if (e.status !== 401) retryEvents(); }
  }, 5000);
}

function setConn(state) {
  Object.assign($("#conn-state"), { textContent: t(`conn_${state}`) }).dataset.state = state;
}

// Once a second: the UTC clock, fresh relative times, the sound hint, the stream watchdog.
function tick() {
  const now = new Date();
  $("#utc-clock").textContent = `${now.toISOString().slice(11, 19)} UTC`;
  if (now.getSeconds() % 10 === 0) {
    for (const e of document.querySelectorAll("time[data-ns] .ago")) e.textContent = `(${relative(e.parentNode.dataset.ns)})`;
  }
  $("#sound-hint").hidden = !S.me || A.ctx?.state === "running";
  if (phone.joined) phone.renderPanel();
  if (S.es && Date.now() - S.lastEvent > 30000) {
    setConn("lost");
    if (Date.now() - S.lastEvent > 60000) connectEvents();
  }
}

// ---- Navigation: only the views the operator's permissions allow; data is fetched on entry. ----
const LISTS = { drafts: "/console/drafts", notes: "/console/shift-log", operators: "/console/operators" };
const loadDrafts = () => load("drafts"), loadNotes = () => load("notes"), loadOperators = () => load("operators");
const LOADERS = { traffic: loadTraffic, drafts: loadDrafts, shiftlog: loadNotes, audit: () => records.loadAudit(),
  operators: loadOperators, calls: () => callLog.load(), queue: () => queue.load() };
const RENDERERS = { board: renderBoard, traffic: renderTraffic, message: renderMessage, drafts: renderDrafts,
  shiftlog: renderNotes, audit: () => records.renderAudit(), operators: renderOperators, compose: renderCompose,
  calls: () => callLog.render(), call: () => callLog.renderRecord(), queue: () => queue.render() };

async function load(kind, background = false) {
  S[kind] = (await api("GET", LISTS[kind], null, background)) ?? [];
  RENDERERS[kind === "notes" ? "shiftlog" : kind]();
}

function show(view) {
  if (!can(NEEDS[view])) view = "board";
  S.view = view;
  for (const s of document.querySelectorAll("main > .view")) s.hidden = s.id !== `view-${view}`;
  for (const b of document.querySelectorAll("#nav [data-view]")) {
    const under = { message: "traffic", call: "calls" }[view] ?? view;
    b.setAttribute("aria-current", b.dataset.view === under ? "page" : "false");
  }
  RENDERERS[view]();
  if (LOADERS[view]) run(LOADERS[view]);
}

function applyWords() {
  document.documentElement.lang = S.lang;
  document.title = t("title");
  for (const e of document.querySelectorAll("[data-t]")) e.textContent = t(e.dataset.t);
  $("#login-lang").textContent = $("#lang-switch").textContent = t("lang_other");
}

function rerender() {
  applyWords();
  if (!S.me) return;
  $("#operator-name").textContent = S.me.operator ?? "";
  $("#operator-role").textContent = word("role_", S.me.role);
  for (const b of document.querySelectorAll("#nav [data-view]")) b.hidden = !can(NEEDS[b.dataset.view]);
  $("#shift-form").hidden = !can("shift_log");
  setConn($("#conn-state").dataset.state);
  renderBoard();
  if (S.view !== "board") RENDERERS[S.view]();
}

// ---- Board: one card per link, a row per path, then the alarms. ----
function renderBoard() {
  const b = S.board;
  if (!b) return;
  $("#station-name").textContent = b.station ?? "";
  $("#exercise-banner").hidden = !b.exercise;
  document.body.classList.toggle("exercise", !!b.exercise);
  Object.assign($("#exercise-toggle"), { hidden: !can("release"),
    textContent: t(b.exercise ? "exercise_end" : "exercise_start") });
  // In an exercise, what is composed is an exercise message unless someone chooses otherwise.
  if (b.exercise !== S.exercise) {
    S.exercise = b.exercise;
    $("#compose-type").value = b.exercise ? "exercise" : "principal";
  }
  const links = b.links ?? [];
  $("#board-links").replaceChildren(...links.map(linkCard));
  if (!links.length) $("#board-links").append(el("p", { class: "muted", text: t("no_links") }));
  fillLinkSelects(links.map((l) => l.name));
  fillComposeLanguages();
  renderAlarms(b.alarms ?? []);
  callLog.onBoard(b, S.view); // missed calls: the count on the nav button, the calls page
}

function linkCard(l) {
  const heads = ["col_path", "col_state", "col_since", "col_rtt", "col_offset", "col_history"];
  return el("article", { class: `card st-${lc(l.state)}`, "data-link": l.name, "data-state": l.state },
    el("header", { class: "card-head" },
      el("div", {}, el("h2", { text: l.name }), el("span", { class: "muted" }, t("peer", { peer: isolated(l.peer ?? "—") }))),
      el("div", { class: "state-block" }, el("div", { class: "state-word", text: word("state_", l.state) }),
        el("div", { class: "muted" }, t("since"), " ", timeEl(l.since_ns)),
        l.state !== "UP" && l.reason ? el("div", { class: "down-reason" }, t("down_reason", { reason: isolated(l.reason) })) : null)),
    el("div", { class: "table-wrap" }, el("table", { class: "paths" },
      el("thead", {}, el("tr", {}, heads.map((k) => el("th", { text: t(k) })))),
      el("tbody", {}, (l.paths ?? []).map(pathRow)))),
    el("dl", { class: "facts" },
      fact("last_test", l.last_test ? testInfo(l.last_test) : t("never")),
      fact("last_peer_test", timeEl(l.last_peer_test_ns, t("never"))),
      fact("unreceipted", el("span", { class: l.unreceipted > 0 ? "mono warn" : "mono", text: l.unreceipted ?? "—" }))),
    can("call") ? callControl(l.name) : null);
}

// Placing a call: from the link's card, with a precedence. No two-person rule for calls.
function callControl(link) {
  const precedence = el("select", { class: "call-precedence", "aria-label": t("col_lane") },
    ["FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE"].map((p) => el("option", { value: p, text: p, selected: p === "ROUTINE" })));
  const place = el("button", { type: "button", class: "call-place", text: t("call_place") });
  place.addEventListener("click", () => run(() => phone.place(link, precedence.value), place));
  return el("div", { class: "call-control" }, precedence, place);
}

function pathRow(p) {
  return el("tr", { "data-path": p.address, "data-state": p.state, class: `st-${lc(p.state)}` },
    el("td", { class: "mono", text: p.address }),
    el("td", { class: "state-cell", text: word("state_", p.state) }),
    el("td", {}, timeEl(p.since_ns)),
    labelled(measure(p, p.rtt_ms), "col_rtt"),
    labelled(measure(p, p.clock_offset_ms), "col_offset"),
    el("td", {}, sparkline(p.rtt_history ?? [])));
}

// A cell that names its column where the table's header is not shown (a small screen: narrow.css).
function labelled(cell, key) {
  cell.dataset.label = t(key);
  return cell;
}

// A path that is not UP keeps its last RTT and clock offset: shown as stale, with their age.
function measure(p, value) {
  if (p.state === "UP" || value == null) return el("td", { class: "num", text: num(value) });
  return el("td", { class: "num stale", title: t("stale_title") }, el("span", { class: "stale-value", text: num(value) }), " ",
    el("span", { class: "stale-word", text: t("stale") }), " ",
    p.measured_ns == null ? null : el("time", { "data-ns": String(p.measured_ns), title: `${utc(p.measured_ns)} UTC` },
      el("span", { class: "ago", text: `(${relative(p.measured_ns)})` })));
}

function testInfo(test) {
  return el("span", { class: `test-${lc(test.state)}` }, word("test_", test.state), " · ", timeEl(test.sent_ns),
    test.receipted_ns != null ? [" · ", t("receipt"), " ", timeEl(test.receipted_ns)] : null);
}

// The last hour of RTT, counted back from the newest sample, so a skewed browser clock cannot empty it.
function sparkline(history) {
  const W = 120, H = 28;
  const box = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "spark", role: "img" });
  const pts = history.filter((p) => p?.[1] != null).map(([at, v]) => [Number(at), Number(v)])
    .sort((a, b) => a[0] - b[0]);
  if (!pts.length) return box;
  const end = pts[pts.length - 1][0];
  const recent = pts.filter(([at]) => at >= end - HOUR_NS), values = recent.map(([, v]) => v);
  const min = Math.min(...values), max = Math.max(...values), range = Math.max(max - min, 5); // 5 ms: jitter stays flat
  const xy = ([at, v]) => [(W - 3) * (1 - (end - at) / HOUR_NS), H - 3 - ((v - min) / range) * (H - 6)];
  const title = svg("title");
  title.textContent = t("spark_title", { min: num(min), max: num(max) });
  const [x, y] = xy(recent[recent.length - 1]);
  box.append(title,
    svg("polyline", { points: recent.map((p) => xy(p).map((n) => n.toFixed(1)).join(",")).join(" "),
      fill: "none", stroke: "currentColor", "stroke-width": 1.5, "stroke-linejoin": "round" }),
    svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 2, fill: "currentColor" }));
  return box;
}

function renderAlarms(alarms) {
  const sorted = [...alarms].sort((a, b) => Number(b.raised_ns) - Number(a.raised_ns));
  $("#alarms").replaceChildren(...sorted.map(alarmItem));
  if (!sorted.length) $("#alarms").append(el("li", { class: "muted", text: t("no_alarms") }));
  // The board names a bounded number of alarms; its counts are exact (a FLASH flood, item 8).
  const counts = S.board?.alarm_counts ?? {};
  const unseen = (counts.flash ?? 0) + (counts.other ?? 0) - sorted.length;
  if (unseen > 0) $("#alarms").append(el("li", { class: "muted", text: t("alarms_more", { n: unseen }) }));
  renderFlash();
  const others = sorted.filter((a) => a.kind !== "flash");
  $("#alarm-banner").hidden = !others.length;
  if (others.length) {
    const text = others[0].text || word("kind_", others[0].kind);
    $("#alarm-banner").textContent = t("banner", { n: counts.other ?? others.length, text: isolated(text) });
  }
  // One beep per newly raised alarm; not for those already standing when the operator signed in.
  const fresh = S.seen && others.some((a) => !a.silenced && !S.seen.has(String(a.id)));
  S.seen = new Set(alarms.map((a) => String(a.id)));
  if (fresh) beep();
}

function alarmItem(a) {
  const quiet = !a.silenced && can("silence")
    ? button("silence", "silence", (e) => run(() => silence([a.id]), e.currentTarget)) : null;
  return el("li", { "data-alarm": a.id, "data-kind": a.kind, "data-level": a.level,
    class: a.silenced ? "is-silenced" : null },
    el("strong", { class: "kind", text: word("kind_", a.kind) }), exerciseTag(a.message?.type),
    el("span", { class: "mono", text: a.link ?? "" }),
    el("span", { class: "alarm-text" }, peer(a.text ?? "")),
    el("span", { class: "muted" }, t("raised"), " ", timeEl(a.raised_ns)),
    el("span", { class: "level", text: t("level", { n: a.level ?? "—" }) }),
    a.silenced ? tag("silenced") : quiet,
    a.kind === "missed_call" ? button("quiet", "open_calls", () => show("calls")) : null); // acknowledged there
}

async function silence(ids) {
  for (const id of ids) await api("POST", `/console/alarms/${enc(id)}/silence`);
  for (const a of S.board?.alarms ?? []) if (ids.includes(a.id)) a.silenced = true;
  renderBoard();
}

// ---- FLASH: the one thing that must not be missed. It takes the whole screen and sounds. ----
const flashAlarms = () => (S.board?.alarms ?? []).filter((a) => a.kind === "flash")
  .sort((a, b) => Number(a.raised_ns) - Number(b.raised_ns));

function renderFlash() {
  const flashes = flashAlarms(), box = $("#flash-alarm"), a = flashes[0];
  box.hidden = !a;
  document.body.classList.toggle("flash-on", !!a);
  if (!a) { S.flashId = null; stopSiren(); return; }
  const counts = S.board?.alarm_counts ?? {}, ack = $("#flash-ack");
  const m = a.message ?? {}, loud = (counts.flash_loud ?? flashes.filter((f) => !f.silenced).length) > 0;
  $("#flash-link").textContent = m.link ?? a.link ?? "";
  $("#flash-ref").textContent = m.lane ? `${m.lane} ${m.seq}` : "";
  // The alarm names its message; the text comes by that id, once (issue 13, item 8).
  const text = $("#flash-text"), full = flashMessage(a);
  text.replaceChildren(full ? peer(full.text ?? "") : t("flash_loading"));
  if (full?.language) text.lang = full.language; else text.removeAttribute("lang");
  $("#flash-time").replaceChildren(timeEl(m.received_ns ?? a.raised_ns));
  $("#flash-exercise").hidden = m.type !== "exercise";
  const more = (counts.flash ?? flashes.length) - 1;
  Object.assign($("#flash-more"), { hidden: !more, textContent: t("flash_more", { n: more }) });
  Object.assign(ack, { hidden: !can("acknowledge"), disabled: !a.message });
  $("#flash-hold-hint").hidden = ack.hidden;
  $("#flash-silence").hidden = !loud || !can("silence");
  $("#flash-silenced").hidden = loud;
  if (S.flashId !== a.id) {
    // A new FLASH: no press begun before now counts, and focus stays where the officer is typing
    // (the key meant for the text goes into it). Elsewhere it goes to the overlay itself, where a
    // key does nothing, rather than to a button behind it.
    Object.assign(S, { flashId: a.id, flashShownAt: performance.now() });
    holdEnd();
    if (!document.activeElement?.matches("input, textarea, select, [contenteditable]")) box.focus({ preventScroll: true });
  }
  if (loud) startSiren(); else stopSiren();
}

// ---- Acknowledging a FLASH is a deliberate act (issue 15, item 1): the button is pressed and held
// for HOLD_MS, with the pointer or with Space or Enter once a person has moved focus to it. The
// console never focuses it; a click does nothing; a press begun before this FLASH was shown, or a
// key's auto-repeat, never starts the hold; letting go, or leaving the button, ends it. ----
const HOLD_MS = 1500;
const HOLD = { timer: 0 };

function holdStart(e) {
  const ack = $("#flash-ack");
  if (e.type === "keydown" && (e.key !== " " && e.key !== "Enter")) return;
  if (e.type === "pointerdown" && e.button !== 0) return;
  e.preventDefault(); // no click, no focus change, no text selection: only the hold acts
  if (HOLD.timer || e.repeat || ack.disabled || $("#flash-alarm").hidden) return;
  if (!(e.timeStamp > S.flashShownAt)) return; // pressed before the overlay showed this FLASH
  const id = S.flashId;
  ack.classList.add("holding");
  HOLD.timer = setTimeout(() => {
    HOLD.timer = 0;
    ack.classList.remove("holding");
    if (S.flashId === id) run(flashAck, ack);
  }, HOLD_MS);
}

function holdEnd() {
  clearTimeout(HOLD.timer);
  HOLD.timer = 0;
  $("#flash-ack").classList.remove("holding");
}

async function toggleExercise() {
  await api("POST", "/console/exercise", { on: !S.board?.exercise });
  S.board = await api("GET", "/console/board");
  renderBoard();
}

// The text of the FLASH on the overlay, fetched by the id its alarm names: null until it is here.
// Only the one shown is kept, so a flood never fills the page.
function flashMessage(a) {
  const m = a.message;
  if (!m?.lane) return { text: a.text };
  const key = `${m.link}/${m.direction}/${m.lane}/${m.seq}`;
  if (S.flashText?.key !== key) {
    S.flashText = { key, message: null };
    api("GET", `/console/messages/${enc(m.link)}/${m.direction}/${m.lane}/${enc(m.seq)}`, undefined, true)
      .then((message) => { if (S.flashText?.key === key) { S.flashText.message = message; renderFlash(); } })
      .catch(() => { if (S.flashText?.key === key) S.flashText = null; }); // tried again at the next board
  }
  return S.flashText.message;
}

async function flashAck() {
  const a = flashAlarms()[0];
  if (a?.message) await ack({ link: a.link, ...a.message });
}

// Silence sounds for every FLASH standing: one button must stop the noise.
// One request for all of them, however many: the board shows only the oldest (item 8).
async function flashSilence() {
  await api("POST", "/console/alarms/silence", { kind: "flash" });
  S.board = await api("GET", "/console/board");
  renderBoard();
}

// Acknowledge an incoming message, then fetch the board at once so that the overlay does not linger.
async function ack(m) {
  await api("POST", `/console/inbox/${enc(m.link ?? S.link)}/${enc(m.lane)}/${enc(m.seq)}/ack`, {});
  say(t("acked", { lane: m.lane, seq: m.seq }), "info");
  S.board = await api("GET", "/console/board");
  renderBoard();
  if (["traffic", "message"].includes(S.view)) await loadTraffic();
}

// ---- Sound: Web Audio only, resumed on any gesture because browsers block it before one. ----
const A = { ctx: null, osc: null, timer: 0 };

function audio() {
  try {
    A.ctx ??= new (window.AudioContext || window.webkitAudioContext)();
    if (A.ctx.state === "suspended") A.ctx.resume().catch(() => {});
  } catch { A.ctx = null; }
  return A.ctx;
}

// A square wave, started now; null when the browser has no audio at all.
function tone(freq, volume) {
  const ctx = audio(), osc = ctx?.createOscillator(), gain = ctx?.createGain();
  if (!osc) return null;
  Object.assign(osc, { type: "square" }).frequency.value = freq;
  gain.gain.value = volume;
  osc.connect(gain).connect(ctx.destination);
  osc.start();
  return osc;
}

// Two tones, 880 and 660 Hz, alternating every half second until acknowledged or silenced.
function startSiren() {
  if (A.osc) return;
  try { A.osc = tone(880, 0.15); } catch { /* no sound: the overlay still stands */ }
  let high = true;
  const alternate = () => { high = !high; A.osc?.frequency.setValueAtTime(high ? 880 : 660, A.ctx.currentTime); };
  if (A.osc) A.timer = setInterval(alternate, 500);
}

function stopSiren() {
  clearInterval(A.timer);
  try { A.osc?.stop(); } catch { /* already stopped */ }
  A.osc = null;
}

function beep() {
  try { tone(660, 0.15)?.stop(A.ctx.currentTime + 0.3); } catch { /* no sound: the banner still shows */ }
}

// ---- Traffic: inbox and outbox of one link, each under the statement of its gaps. ----
function fillLinkSelects(names) {
  for (const sel of [$("#traffic-link"), $("#compose-link")]) {
    const current = sel.value;
    if ([...sel.options].map((o) => o.value).join("\n") === names.join("\n")) continue;
    sel.replaceChildren(...names.map((n) => el("option", { value: n, text: n })));
    if (names.includes(current)) sel.value = current;
  }
  if (names.includes(S.link)) return;
  S.link = $("#traffic-link").value = names[0] ?? "";
  S.traffic = null;
  records.resetTraffic();
  if (S.view === "traffic") run(loadTraffic);
}

async function loadTraffic(background = false) {
  const link = S.link;
  if (!link) return;
  const data = await api("GET", records.trafficPath(link, S.filters, LANES, TYPES), null, background);
  if (link !== S.link) return; // the operator chose another link meanwhile
  S.traffic = data;
  if (["traffic", "message"].includes(S.view)) RENDERERS[S.view]();
}

function renderTraffic() {
  for (const [kind, values] of [["lane", LANES], ["type", TYPES]]) {
    $(`#filter-${kind}`).replaceChildren(...values.map((v) => el("label", { class: "chip" },
      el("input", { type: "checkbox", value: v, "data-filter": kind, checked: S.filters[kind].has(v),
        onchange: (e) => { S.filters[kind][e.target.checked ? "add" : "delete"](v); records.resetTraffic(); run(loadTraffic); } }),
      kind === "lane" ? v : word("type_", v))));
  }
  const tr = S.traffic ?? {};
  fillTable("#inbox", tr.inbox ?? []);
  fillTable("#outbox", tr.outbox ?? []);
  renderGaps($("#gaps-in"), tr.gaps?.in ?? {});
  renderGaps($("#gaps-out"), tr.gaps?.out ?? {});
  records.renderTraffic(S.traffic);
}

// A lane or type the console does not know is always shown: filters never hide the unexpected.
const shown = (m) => (!LANES.includes(m.lane) || S.filters.lane.has(m.lane))
  && (!TYPES.includes(m.type) || S.filters.type.has(m.type));

// Newest first by this station's own clock: when a message arrived, or when we accepted ours. Its
// sent_ns is its sender's word (a peer can date one 2554), shown and marked, never ordered by.
const ours = (m) => Number(m.received_ns ?? m.accepted_ns ?? 0);

function fillTable(sel, messages) {
  const rows = messages.filter(shown).sort((a, b) => ours(b) - ours(a)).map(messageRow);
  $(`${sel} tbody`).replaceChildren(...rows);
  if (!rows.length) $(`${sel} tbody`).append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, t("nothing"))));
}

// A call record is a station's statement about a call, not a message for a person to act on; nor
// is a link test (the stations'); nor an acknowledgement: it is shown on the message it
// acknowledges (issue 15, item 2).
const acknowledgeable = (m) => !["call_record", "acknowledgement", "test"].includes(m.type);
const canAck = (m) => m.direction === "in" && acknowledgeable(m) && !m.acknowledged
  && m.state !== "acknowledged" && can("acknowledge");
const ackButton = (m) => button("ack", "ack", (e) => { e.stopPropagation(); run(() => ack(m), e.currentTarget); });

function messageRow(m) {
  const row = el("tr", { "data-direction": m.direction, "data-lane": m.lane, "data-seq": m.seq, "data-state": m.state,
    "data-type": m.type, class: m.overdue ? "overdue" : null, tabindex: 0 },
  el("td", { class: m.acknowledges ? "lane lane-ack" : `lane lane-${m.lane}`, text: m.lane }),
  el("td", { class: "num", text: String(m.seq), title: seqTitle(m) }),
  el("td", {}, typeLabel(m.type)),
  el("td", { class: "mono" }, peer(m.language ?? "")),
  el("td", { class: "times" }, records.times(m)),
  el("td", { class: "short", lang: m.language || null }, m.acknowledges ? ackOf(m) : null, peer(short(m.text)),
    queue.markers(m)),
  el("td", {}, journey(m), dueTag(m)),
  el("td", {}, canAck(m) ? ackButton(m) : null));
  row.addEventListener("click", () => openMessage(m));
  row.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.target === row) openMessage(m); });
  return row;
}

// A message waiting for a person's acknowledgement: its deadline, counting down (the clock tick
// keeps it fresh), then how long it has been overdue. Incoming ones too: the people here must act.
function dueTag(m) {
  if (m.deadline_ns == null || m.acknowledged) return null;
  return el("div", { class: m.overdue ? "due due-late" : "due", "data-deadline": String(m.deadline_ns) },
    t(m.overdue ? "overdue" : "deadline"), " ", el("time", { "data-ns": String(m.deadline_ns), title: `${utc(m.deadline_ns)} UTC` },
      el("span", { class: "ago", text: `(${relative(m.deadline_ns)})` })));
}

// A peer's message dated further from our clock than the station allows: its date is not believed.
const clockMark = (m) => (m.clock_fault ? el("span", { class: "tag clock-fault",
  title: t("clock_fault_title", { when: `${utc(m.sent_ns)} UTC` }), text: t("clock_fault") }) : null);

// "→ FLASH 3: " before an acknowledgement's text: the message it acknowledges.
const ackOf = (m) => el("span", { class: "acks" }, t("acks_ref", { lane: m.acknowledges.lane, seq: m.acknowledges.seq }));

// The steps a message goes through: only a principal (or exercise) message waits for a person's
// acknowledgement (the deadline is for those); the journey of any other ends at the peer station,
// or at its arrival, unless a person acknowledged it all the same.
function stepsOf(m) {
  const steps = STEPS[m.direction] ?? STEPS.out;
  const asks = ["principal", "exercise"].includes(m.type);
  return asks || m.acknowledged ? steps : steps.filter((s) => s !== "acknowledged");
}

// Where a message has got to (issue 15, item 7): each step done (✓), waiting (○) or, once the
// message is overdue, late (!), each in words of its own, so "acknowledged" is never read where
// a person has not acknowledged it.
const MARKS = { done: "✓", waiting: "○", late: "!" };
function journey(m) {
  const steps = stepsOf(m);
  const at = Math.max(steps.indexOf(m.state), m.acknowledged ? steps.length - 1 : -1);
  return el("ol", { class: "journey" }, steps.map((s, i) => {
    const status = i <= at ? "done" : m.overdue ? "late" : "waiting";
    const words = status === "done" ? `step_${s}` : `${status}_${s}`;
    return el("li", { class: status, "data-step": s, "data-status": status },
      el("span", { class: "mark", "aria-hidden": "true", text: MARKS[status] }), " ",
      t(WORDS.en[words] ? words : `step_${s}`));
  }));
}

// [1, 2, 3, 7] -> "1–3, 7"; capped so that a long outage cannot flood the screen. Entries that are
// not numbers (the station may say "3 missing") are shown as they are.
function ranges(items) {
  const words = items.filter((n) => !Number.isInteger(n)).map(String), out = [];
  for (const n of [...new Set(items.filter(Number.isInteger))].sort((a, b) => a - b)) {
    const last = out[out.length - 1];
    if (last && n === last[1] + 1) last[1] = n; else out.push([n, n]);
  }
  const text = [...words, ...out.slice(0, 20).map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`))].join(", ");
  return out.length > 20 ? `${text} ${t("and_more", { n: out.length - 20 })}` : text;
}

function renderGaps(p, gaps) {
  const lanes = [...LANES, ...Object.keys(gaps).filter((l) => !LANES.includes(l))].filter((l) => gaps[l]);
  const span = ({ first, last }) => (first == null || first === last ? `${last}` : `${first}–${last}`);
  const have = lanes.filter((l) => gaps[l].last != null).map((l) => `${l} ${span(gaps[l])}`).join(", ");
  const missing = lanes.filter((l) => gaps[l].missing?.length).map((l) => `${l} ${ranges(gaps[l].missing)}`).join("; ");
  p.classList.toggle("bad", !!missing);
  p.textContent = missing ? t("gaps_missing", { list: missing, ranges: have })
    : have ? t("no_gaps", { list: have }) : t("no_messages");
}

// ---- One message in full: the original text is the point; the rest is its provenance. ----
function openMessage(m) {
  S.open = m;
  S.detail = null;
  show("message");
  run(() => loadDetail());
}

// The message with its files and translations, from the station (the traffic list has neither).
async function loadDetail(background = false) {
  const o = S.open;
  if (!o) return;
  const link = o.link ?? S.link;
  const path = `/console/messages/${enc(link)}/${o.direction}/${o.lane}/${enc(o.seq)}`;
  const [detail, glossary] = await Promise.all([api("GET", path, null, background),
    o.direction === "in" ? api("GET", `/console/glossary/${enc(link)}`, null, background) : []]);
  if (S.open !== o) return;
  Object.assign(S, { detail, glossary });
  if (S.view === "message") renderMessage();
}

function renderMessage() {
  const o = S.open, box = $("#message-body");
  if (!o) { box.replaceChildren(); return; }
  // The freshest copy from the last traffic load, so that its journey moves while it is open.
  const m = [...(S.traffic?.inbox ?? []), ...(S.traffic?.outbox ?? [])]
    .find((x) => x.direction === o.direction && x.lane === o.lane && String(x.seq) === String(o.seq)) ?? o;
  box.replaceChildren(...[ // replaceChildren would print a null as "null" (issue 15, item 3)
    el("h2", {}, `${m.lane} `, el("span", { class: "mono", text: String(m.seq), title: seqTitle(m) }),
      ` · ${word("dir_", m.direction)} · ${m.link ?? S.link} `, exerciseTag(m.type)),
    m.acknowledges ? el("p", { class: "acks" }, ackOf(m)) : null,
    el("pre", { class: "fulltext", lang: m.language || null }, peer(m.text ?? "")),
    el("div", { class: "actions" }, canAck(m) ? ackButton(m) : null),
    el("dl", { class: "facts" }, fact("col_lane", m.lane),
      fact("col_seq", el("span", { class: "mono", text: m.seq })), fact("col_type", typeLabel(m.type)),
      fact("col_lang", peer(m.language ?? "—")), provenance(m),
      fact(m.direction === "in" ? "fact_sent_theirs" : "sent", timeEl(m.sent_ns), clockMark(m)),
      fact(m.direction === "in" ? "at_received" : "at_accepted", timeEl(m.received_ns ?? m.accepted_ns)),
      ackedAt(m) != null ? fact("fact_acknowledged", timeEl(ackedAt(m))) : null, fact("deadline", timeEl(m.deadline_ns)),
      fact("col_state", word("step_", m.state)),
      fact("hash", el("span", { class: "mono hash", text: m.hash ?? "—" })), fact("col_journey", journey(m))),
    el("p", { class: "verified", text: t("verified") }), acknowledgementSection(m),
    filesSection(m), m.direction === "in" && !m.acknowledges ? translationsSection(m) : null,
    m.direction === "in" && !m.acknowledges ? glossarySection(m) : null].filter((c) => c != null));
}

// When a person acknowledged a message (issue 15, item 12): ours of theirs when we accepted it,
// theirs of ours when it arrived; its sender's date if that is all there is.
function ackedAt(m) {
  const a = S.detail?.acknowledgement ?? m.acknowledgement;
  return a ? (m.direction === "in" ? a.accepted_ns : a.received_ns) ?? a.sent_ns : null;
}

// The acknowledgement of a message, on it (issue 15, items 2 and 8): when, with what text (which
// names the person: the console signs "Acknowledged by <name>"), and the envelope that carried it.
function acknowledgementSection(m) {
  const a = S.detail?.acknowledgement ?? m.acknowledgement;
  if (!a) return m.acknowledged ? el("section", { class: "acknowledgement" }, el("h3", { text: t("ack_title") }),
    el("p", { class: "muted", text: t("ack_unlisted") })) : null;
  const theirs = m.direction === "out"; // the peer's acknowledgement of ours, or ours of theirs
  return el("section", { class: "acknowledgement" }, el("h3", { text: t("ack_title") }),
    el("dl", { class: "facts" },
      fact(theirs ? "ack_by_peer" : "ack_by_us", el("pre", { class: "fulltext", lang: a.language || null }, peer(a.text ?? ""))),
      fact("sent", timeEl(a.sent_ns), clockMark(a)),
      theirs ? fact("at_received", timeEl(a.received_ns)) : null,
      fact("ack_envelope", el("span", { class: "mono", text: `${a.lane} ${a.seq}` }))));
}

// Who drafted and who released a message of ours (issue 15, item 8), among its facts; one sent
// through the station's API, or by the station itself, says so.
function provenance(m) {
  if (m.direction !== "out" || m.acknowledges || m.type === "call_record" || S.detail == null) return null;
  const d = S.detail.draft;
  if (!d) return fact("sent_by_label", el("span", { class: "muted", text: t(m.type === "test" ? "by_station" : "by_api") }));
  return [fact("drafted_by_label", d.drafted_by, " · ", timeEl(d.drafted_ns)),
    fact(d.decided_by === d.drafted_by ? "sent_by_label" : "released_by_label", d.decided_by ?? "—", " · ", timeEl(d.decided_ns))];
}

const bytes = (n) => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

// Each file: how far it has come (to the peer, or to us), a download once held, a picture shown.
function filesSection(m) {
  const files = S.detail?.attachments ?? m.attachments ?? [];
  if (!files.length) return null;
  const link = m.link ?? S.link;
  return el("section", { class: "files" }, el("h3", { text: t("files") }), el("ul", {}, files.map((f, i) => {
    const whole = f.held_whole || (m.direction === "out" && f.held == null);
    const url = `/console/files/${enc(link)}/${m.direction}/${m.lane}/${enc(m.seq)}/${i}`;
    const mine = m.direction === "out"; // our own copy is whole from the start
    return el("li", { "data-file": f.sha256 },
      el("strong", {}, peer(f.name)), ` · ${bytes(f.size)} · `, el("span", { class: "mono", text: f.media_type }), " ",
      el("progress", { max: f.size || 1, value: whole ? f.size || 1 : f.held ?? 0 }), " ",
      el("span", { text: whole ? t("file_held") : t("file_waiting", { held: bytes(f.held ?? 0), size: bytes(f.size) }) }),
      " ", mine || whole ? el("a", { href: url, download: f.name, text: t("file_download") }) : null,
      PREVIEW.has(f.media_type) && (mine || whole) ? el("div", {}, el("img", { class: "preview", src: url, alt: plainShown(f.name) })) : null);
  })));
}

// Translations of a received message: the original stays above, untouched; each translation says
// who made it, who checked it and whether it is certified; a machine draft says it is one. A
// withdrawn translation stays, struck through, with who withdrew it and why.
function translationsSection(m) {
  const notes = S.detail?.annotations ?? [], me = S.me?.operator;
  const reviews = notes.filter((a) => a.kind === "review"), certs = notes.filter((a) => a.kind === "certification");
  const withdrawals = notes.filter((a) => a.kind === "withdrawal");
  const link = m.link ?? S.link, base = `/console/messages/${enc(link)}/in/${m.lane}/${enc(m.seq)}`;
  const items = notes.filter((a) => a.kind === "translation" || a.kind === "machine").map((a) => {
    const by = reviews.filter((r) => r.refers === a.hash), cert = certs.find((c) => c.refers === a.hash);
    const gone = withdrawals.find((w) => w.refers === a.hash);
    const status = a.kind === "machine" ? [el("span", { class: "tag machine", text: t("machine_by", { engine: a.engine }) })]
      : [el("span", { text: t("translated_by", { who: a.person, role: word("role_", a.role) }) }), " · ",
        by.length ? el("span", { text: t("reviewed_by", { who: by.map((r) => r.person).join(", ") }) }) : el("span", { class: "warn", text: t("not_reviewed") }),
        cert ? el("strong", { class: "certified", text: ` · ${t("certified_by", { who: cert.person })}` }) : null];
    const act = (key, what) => button("quiet", key, (e) => run(async () => {
      await api("POST", `${base}/translations/${a.hash}/${what}`, { remark: "" });
      await loadDetail();
    }, e.currentTarget));
    const open = a.kind === "translation" && !gone;
    return el("li", { class: `annotation ${a.kind}${gone ? " withdrawn" : ""}`, "data-hash": a.hash },
      el("pre", { class: "fulltext", lang: a.language }, peer(a.text)),
      el("p", { class: "muted" }, peer(a.language), " · ", ...status),
      gone ? el("p", { class: "withdrawal" }, el("strong", { text: t("withdrawn_by", { who: gone.person }) }), peer(gone.text),
        " · ", timeEl(gone.made_ns)) : null,
      el("div", { class: "actions" },
        a.kind === "machine" && can("translate") ? button("quiet", "use_draft", () => { $("#translation-text").value = a.text; }) : null,
        open && can("review") && a.person !== me && !by.some((r) => r.person === me) ? act("review", "review") : null,
        open && can("certify") && a.person !== me && by.length && !cert ? act("certify", "certify") : null,
        open && can("translate") && (a.person === me || S.me?.role === "supervisor") ? withdrawForm(base, a) : null));
  });
  // Into one of the link's languages other than the original's (hotline.station.languages).
  const primary = (tag) => lc(tag).split("-")[0];
  const tags = linkLanguages(link), into = tags.filter((tag) => primary(tag) !== primary(m.language));
  const target = el("select", { id: "translation-language", "aria-label": t("target") },
    ...languageOptions(into.length ? into : tags, (into.length ? into : tags)[0]));
  const text = el("textarea", { id: "translation-text", rows: 6 });
  const engine = S.detail?.engine;
  return el("section", { class: "translations" }, el("h3", { text: t("translations") }),
    items.length ? el("ul", {}, items) : el("p", { class: "muted", text: t("translations_none") }),
    can("translate") ? el("form", { class: "translate", onsubmit: (e) => { e.preventDefault();
      run(async () => {
        await api("POST", `${base}/translations`, { language: target.value, text: text.value });
        await loadDetail();
      }, e.submitter); } },
    el("h4", { text: t("translate_title") }), el("label", {}, `${t("target")} `, target), text,
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", text: t("translate_save") }),
      engine ? button("quiet", "machine_ask", (e) => run(async () => {
        await api("POST", `${base}/machine`, { target: target.value });
        await loadDetail();
      }, e.currentTarget), { text: t("machine_ask", { engine }) }) : null)) : null);
}

// Withdraw a translation (in the wrong language, say): a signed annotation that says why.
function withdrawForm(base, a) {
  const reason = el("input", { class: "withdraw-reason", type: "text", maxlength: 2000, "aria-label": t("withdraw_reason"),
    placeholder: t("withdraw_reason") });
  return el("span", { class: "withdraw" }, reason, button("quiet", "withdraw_translation", (e) => run(async () => {
    if (!reason.value.trim()) { reason.focus(); say(t("withdraw_needs_reason")); return; }
    await api("POST", `${base}/translations/${a.hash}/withdraw`, { reason: reason.value });
    say(t("translation_withdrawn"), "info");
    await loadDetail();
  }, e.currentTarget)));
}

// What a message's number means (issue 15, item 9): its place in its lane of its sender's chain,
// where acknowledgements and link tests take numbers too (so a first greeting may be ROUTINE 2).
const seqTitle = (m) => t(m.direction === "out" ? "seq_title_out" : "seq_title_in",
  { lane: m.lane, seq: m.seq, link: m.link ?? S.link });

// ---- The link's languages: each link's two (link.toml), offered by name in pickers. ----
const linkLanguages = (name) => S.board?.links?.find((l) => l.name === name)?.languages ?? ["en", "ru"];

function languageName(tag) {
  try { return new Intl.DisplayNames([S.lang], { type: "language" }).of(tag) ?? tag; } catch { return tag; }
}

const languageOptions = (tags, chosen) =>
  tags.map((tag) => el("option", { value: tag, selected: tag === chosen, text: `${languageName(tag)} (${tag})` }));

function fillComposeLanguages() {
  const sel = $("#compose-language"), tags = linkLanguages($("#compose-link").value), current = sel.value;
  const chosen = tags.includes(current) ? current : tags.find((tag) => lc(tag).startsWith(S.lang)) ?? tags[0];
  sel.replaceChildren(...languageOptions(tags, chosen));
  sel.value = chosen;
}

function glossarySection(m) {
  const link = m.link ?? S.link;
  const rows = S.glossary.map((g) => el("tr", {},
    el("td", { lang: g.source_language, text: `${g.source} (${g.source_language})` }),
    el("td", { lang: g.target_language, text: `${g.target} (${g.target_language})` }),
    el("td", { class: "muted", text: g.note }),
    el("td", {}, can("translate") ? button("quiet", "delete", (e) => run(async () => {
      await api("DELETE", `/console/glossary/${enc(link)}/${g.id}`);
      await loadDetail();
    }, e.currentTarget)) : null)));
  const source = el("input", { "aria-label": t("term_source"), placeholder: t("term_source") });
  const target = el("input", { "aria-label": t("term_target"), placeholder: t("term_target") });
  const into = m.language === "ru" ? "en" : "ru";
  return el("section", { class: "glossary" }, el("h3", { text: t("glossary") }),
    rows.length ? el("table", {}, el("tbody", {}, rows)) : el("p", { class: "muted", text: t("glossary_none") }),
    can("translate") ? el("form", { onsubmit: (e) => { e.preventDefault(); run(async () => {
      await api("POST", `/console/glossary/${enc(link)}`, { source_language: m.language, source: source.value,
        target_language: into, target: target.value });
      await loadDetail();
    }, e.submitter); } }, source, " → ", target, " ",
    el("button", { type: "submit", class: "quiet", text: t("glossary_add") })) : null);
}

// ---- Files to send: each uploaded at once, with its progress, and named in the draft. ----
function uploadFiles(list) {
  for (const file of list) {
    const entry = { name: file.name, size: file.size, sent: 0, ref: null };
    S.uploads.push(entry);
    const xhr = new XMLHttpRequest(); // fetch() cannot report an upload's progress
    xhr.open("POST", "/console/files");
    xhr.setRequestHeader("X-CSRF-Token", S.me?.csrf ?? "");
    xhr.upload.onprogress = (e) => { entry.sent = e.loaded; renderUploads(); };
    xhr.onload = () => {
      if (xhr.status === 201) {
        const r = JSON.parse(xhr.responseText);
        entry.ref = { sha256: r.sha256, name: file.name, media_type: file.type || "application/octet-stream" };
      } else {
        S.uploads.splice(S.uploads.indexOf(entry), 1);
        let detail = xhr.statusText;
        try { detail = detailOf(JSON.parse(xhr.responseText)); } catch { /* keep the status text */ }
        say(t("err_http", { status: xhr.status, detail }));
      }
      renderUploads();
    };
    xhr.onerror = () => { S.uploads.splice(S.uploads.indexOf(entry), 1); say(t("err_network")); renderUploads(); };
    xhr.send(file);
  }
  renderUploads();
}

function renderUploads() {
  $("#compose-uploads").replaceChildren(...S.uploads.map((u) => el("li", {},
    el("progress", { max: u.size || 1, value: u.ref ? u.size || 1 : u.sent }), " ",
    u.ref ? t("uploaded", { name: u.name }) : t("uploading", { name: u.name }), " ",
    button("quiet", "delete", () => { S.uploads.splice(S.uploads.indexOf(u), 1); renderUploads(); }))));
  $("#compose-submit").disabled = S.uploads.some((u) => !u.ref) || !checkText.ok;
}

// ---- Compose: check the text as it is typed, so mistakes are caught before a supervisor sees them. ----
function mixedWords(text) {
  const words = text.match(/[\p{L}\p{M}]+/gu) ?? [];
  return [...new Set(words.filter((w) => /\p{Script=Latin}/u.test(w) && /\p{Script=Cyrillic}/u.test(w)))];
}

function checkText() {
  const text = $("#compose-text").value, bytes = new TextEncoder().encode(text).length;
  const items = [[t("check_count", { c: [...text].length, b: bytes }), "info"]];
  if (!text.trim()) items.push([t("warn_empty"), "bad"]);
  else if (text !== text.trim()) items.push([t("warn_space"), "warn"]);
  const mixed = mixedWords(text);
  const words = mixed.slice(0, 5).map((w) => (w.length > 24 ? `${w.slice(0, 23)}…` : w)).join(", ");
  if (mixed.length) items.push([t("warn_mixed", { words }), "warn"]);
  if (bytes > MAX_TEXT_BYTES) items.push([t("warn_long"), "bad"]);
  if (items.length === 1) items.push([t("check_ok"), "ok"]);
  $("#compose-check").replaceChildren(...items.map(([s, kind]) => el("li", { class: kind, text: s })));
  const ok = !items.some(([, kind]) => kind === "bad");
  checkText.ok = ok;
  $("#compose-submit").disabled = !ok || S.uploads.some((u) => !u.ref);
  return ok;
}

async function submitDraft() {
  if (!checkText()) return;
  const body = { link: $("#compose-link").value, lane: $("#compose-lane").value, type: $("#compose-type").value,
    language: $("#compose-language").value, text: $("#compose-text").value,
    attachments: S.uploads.filter((u) => u.ref).map((u) => u.ref) };
  S.lastDraft = await api("POST", "/console/drafts", body);
  $("#compose-text").value = "";
  S.uploads = [];
  $("#compose-files").value = "";
  renderUploads();
  renderCompose();
}

function renderCompose() {
  const d = S.lastDraft;
  checkText();
  $("#compose-result").textContent = !d ? "" : d.state === "released" ? t("sent_as", { lane: d.lane, seq: d.seq })
    : d.state === "draft" ? t("waiting", { id: d.id }) : t("draft_state", { id: d.id, state: d.state });
}

// ---- Drafts: the two-person rule is the station's; the console only explains it. The list holds
// the drafts waiting, then the signed-in person's own drafts rejected in the last week, each with
// who rejected it and why (issue 15, item 16). ----
function renderDrafts() {
  const waiting = S.drafts.filter((d) => d.state === "draft").length;
  Object.assign($("#drafts-count"), { textContent: String(waiting), hidden: !waiting });
  $("#drafts-list").replaceChildren(...S.drafts.map(draftCard));
  if (!waiting) $("#drafts-list").prepend(el("p", { class: "muted", text: t("no_drafts") }));
}

function draftCard(d) {
  const own = d.drafted_by === S.me?.operator, waiting = d.state === "draft";
  const reason = el("input", { class: "reject-reason", type: "text", maxlength: 1000, "aria-label": t("reject_reason"),
    placeholder: t("reject_reason") });
  const decide = (verb) => (e) => run(async () => {
    let body;
    if (verb === "reject") {
      if (!reason.value.trim()) { reason.focus(); say(t("reject_needs_reason")); return; }
      body = { reason: reason.value };
    }
    const r = await api("POST", `/console/drafts/${enc(d.id)}/${verb}`, body);
    const said = { release: t("released_as", { lane: r.lane, seq: r.seq }), reject: t("rejected", { id: d.id }),
      withdraw: t("withdrawn", { id: d.id }) }[verb];
    say(said, "info");
    await loadDrafts();
  }, e.currentTarget);
  const actions = !waiting ? null : own ? el("div", { class: "actions" },
    button("withdraw", "withdraw", decide("withdraw")),
    can("release") ? el("span", { class: "note", text: t("two_person") }) : null)
    : can("release") ? el("div", { class: "actions" },
      button("release primary", "release", decide("release")), reason, button("reject", "reject", decide("reject")))
    : null;
  return el("article", { class: waiting ? "draft" : `draft ${d.state}`, "data-draft-id": d.id, "data-state": d.state },
    el("header", {}, el("strong", { text: `${d.lane} · ${word("type_", d.type)}` }), " ", exerciseTag(d.type),
      ` → ${d.link} · ${t("drafted_by", { who: d.drafted_by })} · `, timeEl(d.drafted_ns), " · ", peer(d.language)),
    d.state === "rejected" ? el("p", { class: "verdict warn" },
      t("rejected_by", { who: d.decided_by ?? "—" }), peer(d.reason ?? ""), " · ", timeEl(d.decided_ns)) : null,
    el("pre", { class: "fulltext", lang: d.language || null }, peer(d.text ?? "")),
    actions);
}

// What became of a draft of mine, told as it happens (the station tells the author only).
function draftNotice(n) {
  if (n.state !== "rejected") return;
  say(t("draft_rejected_notice", { id: n.id, who: n.by ?? "—", reason: n.reason ?? "" }), "notice");
  run(() => load("drafts", true));
}

// ---- Shift log: what the next shift must know. ----
function renderNotes() {
  $("#shift-list").replaceChildren(...S.notes.map((n) =>
    el("article", { class: n.handover ? "note-item handover" : "note-item" },
    el("header", {}, timeEl(n.at_ns), ` · ${n.author} `, n.handover ? tag("handover_tag") : null),
    el("p", { class: "fulltext", text: n.text ?? "" }))));
  if (!S.notes.length) $("#shift-list").append(el("p", { class: "muted", text: t("no_notes") }));
}

async function submitNote() {
  const text = $("#shift-text").value;
  if (!text.trim()) return;
  await api("POST", "/console/shift-log", { text, handover: $("#shift-handover").checked });
  $("#shift-text").value = "";
  $("#shift-handover").checked = false;
  await loadNotes();
}

// ---- Operators: an admin is never shown anyone's credentials, only a one-time enrolment code that
// the person uses to choose their own (the station's rule; the page only explains it). ----
function operatorStatus(o) {
  const locked = o.locked_until_ns != null && nsToMs(o.locked_until_ns) > Date.now();
  const held = o.hold_until_ns != null && nsToMs(o.hold_until_ns) > Date.now() && o.role === "supervisor";
  if (o.disabled) return t("status_disabled");
  if (o.enrolment) return [t("status_enrolling"), " ", timeEl(o.enrolment.expires_ns)];
  if (!o.enrolled_ns) return t("status_unenrolled");
  if (locked) return [t("status_locked"), " ", timeEl(o.locked_until_ns)];
  return held ? [t("status_active"), "; ", t("status_new"), " ", timeEl(o.hold_until_ns)] : t("status_active");
}

function renderOperators() {
  $("#op-table tbody").replaceChildren(...S.operators.map((o) => {
    const locked = o.locked_until_ns != null && nsToMs(o.locked_until_ns) > Date.now();
    const put = (body, ask) => (e) => run(() => updateOperator(o.name, body, ask), e.currentTarget);
    return el("tr", { "data-operator": o.name, class: o.disabled ? "muted" : null },
      el("td", { text: o.name }), el("td", {}, roleChoice(o)),
      el("td", { class: "mono", text: o.language ?? "" }),
      el("td", { class: locked || o.enrolment ? "warn" : null }, operatorStatus(o)),
      el("td", { class: "actions" },
        o.disabled ? button("enable", "enable", put({ disabled: false }))
          : button("disable", "disable", put({ disabled: true }, "confirm_disable")),
        button("reset", "reset", put({ reset: true }, "confirm_reset"))));
  }));
}

// An admin changes a person's role here (audited; the person signs in again under it). The
// station refuses to leave itself without an active admin, and says so.
function roleChoice(o) {
  const choice = el("select", { class: "role", "aria-label": t("col_role") },
    ...ROLES.map((r) => el("option", { value: r, selected: r === o.role, text: word("role_", r) })));
  choice.addEventListener("change", (e) => run(async () => {
    const role = e.currentTarget.value;
    try {
      await updateOperator(o.name, { role }, "confirm_role", { role: word("role_", role) });
    } finally { choice.value = S.operators.find((p) => p.name === o.name)?.role ?? o.role; }
  }, e.currentTarget));
  return choice;
}

async function updateOperator(name, body, ask, words = {}) {
  if (ask && !window.confirm(t(ask, { name, ...words }))) return;
  const r = await api("PUT", `/console/operators/${enc(name)}`, body);
  if (body.reset) showCode(name, r); else say(t("op_updated", { name }), "info");
  await loadOperators();
}

async function addOperator() {
  const name = $("#op-name").value.trim();
  const body = { name, role: $("#op-role").value, language: $("#op-language").value };
  const r = await api("POST", "/console/operators", body);
  $("#op-name").value = "";
  say(t("op_added", { name }), "info");
  showCode(name, r);
  await loadOperators();
}

function showCode(name, r) {
  const box = $("#op-secret");
  box.replaceChildren(tag("secret_warning", "warn"), el("h3", { text: t("secret_for", { name }) }),
    el("dl", { class: "facts" }, fact("enrol_code", el("span", { class: "mono", text: r?.enrolment_code ?? "" }))),
    el("p", { text: t("code_hint", { name, until: `${utc(r?.expires_ns)} UTC` }) }),
    button("dismiss", "dismiss", () => { box.replaceChildren(); box.hidden = true; }));
  box.hidden = false;
}

// ---- Wiring: every handler is attached here, none in the markup (the CSP forbids that anyway). ----
function onSubmit(form, fn, button, after) {
  $(form).addEventListener("submit", (e) => { e.preventDefault(); run(fn, $(button)).then(after); });
}

function init() {
  $("#login-form").addEventListener("submit", doLogin);
  $("#enrol-form").addEventListener("submit", doEnrol);
  $("#login-enrol").addEventListener("click", () => showEnrol(true));
  $("#enrol-back").addEventListener("click", () => showEnrol(false));
  $("#login-lang").addEventListener("click", () => { S.lang = S.lang === "en" ? "ru" : "en"; applyWords(); });
  const actions = { "#lang-switch": switchLang, "#logout": logout,
    "#flash-silence": flashSilence, "#exercise-toggle": toggleExercise };
  for (const [sel, fn] of Object.entries(actions)) $(sel).addEventListener("click", (e) => run(fn, e.currentTarget));
  const ack = $("#flash-ack"); // held, never clicked (holdStart)
  for (const type of ["pointerdown", "keydown"]) ack.addEventListener(type, holdStart);
  for (const type of ["pointerup", "pointerleave", "pointercancel", "keyup", "blur"]) ack.addEventListener(type, holdEnd);
  ack.addEventListener("contextmenu", (e) => e.preventDefault()); // a long touch is a hold, not a menu
  $("#nav").addEventListener("click", (e) => {
    const b = e.target.closest("[data-view]");
    if (b) show(b.dataset.view);
  });
  $("#alarm-banner").addEventListener("click", () => show("board"));
  $("#message-line").addEventListener("click", () => say(""));
  $("#message-back").addEventListener("click", () => show("traffic"));
  $("#call-record-back").addEventListener("click", () => show("calls"));
  $("#traffic-link").addEventListener("change", (e) => {
    Object.assign(S, { link: e.target.value, traffic: null });
    records.resetTraffic();
    show("traffic");
  });
  $("#traffic-search").addEventListener("submit", (e) => { e.preventDefault(); run(() => records.searchTraffic($("#traffic-q").value)); });
  $("#traffic-clear").addEventListener("click", () => { $("#traffic-q").value = ""; run(() => records.searchTraffic("")); });
  $("#audit-filters").addEventListener("submit", (e) => { e.preventDefault(); records.readFilters(); run(() => records.loadAudit()); });
  $("#audit-clear").addEventListener("click", () => { records.clearFilters(); run(() => records.loadAudit()); });
  $("#compose-text").addEventListener("input", checkText);
  $("#compose-files").addEventListener("change", (e) => uploadFiles([...e.target.files]));
  $("#compose-link").addEventListener("change", fillComposeLanguages);
  const ringing = () => phone.calls.find((c) => c.id === $("#call-ring").dataset.call);
  const calls = { "#call-answer": () => phone.answer(ringing()), "#call-decline": () => phone.decline(ringing()),
    "#call-end": () => phone.hangUp(), "#call-mute": () => phone.mute(),
    "#call-join-interpreter": () => phone.join(joinable(), "interpreter"),
    "#call-join-listener": () => phone.join(joinable(), "listener") };
  const joinable = () => phone.calls.find((c) => c.id === $("#call-join").dataset.call);
  for (const [sel, fn] of Object.entries(calls)) $(sel).addEventListener("click", (e) => run(fn, e.currentTarget));
  onSubmit("#compose-form", submitDraft, "#compose-submit", checkText);
  onSubmit("#shift-form", submitNote, "#shift-submit");
  onSubmit("#op-form", addOperator, "#op-submit");
  for (const type of ["click", "keydown"]) document.addEventListener(type, audio, true);
  setInterval(tick, 1000);
  applyWords();
  tick();
  enter().catch((e) => { if (e.status !== 401) showLogin(describe(e)); });
}

init();
