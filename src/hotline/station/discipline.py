"""The hotline's operating discipline, kept by the station rather than by any browser: the link
test both ways every interval, deadlines for a person at the peer to acknowledge, and alarms.

Alarms are derived, every second, from the state of the links and the store: a link or path
that is DOWN, an incoming FLASH no person here has acknowledged, a principal message past its
deadline (ours, for a person there; the peer's, for a person here, raised here no later than the
sender raises it), a test of ours not receipted in time, no test from the peer for too long, the
peer's newest envelope dated far from our clock (a clock fault), the console's TLS certificate
within 30 days of its end. So an alarm cannot be forgotten by a
restart, and it clears only when its cause is gone. A person may
silence one (the sound stops, the alarm stays); one that nobody has silenced after
`escalate_after_s` escalates to level 2; each raise, escalation and clearing goes to the webhook
(what happened, never what a message said), once: what it was told is kept in the store, so a
restart does not tell it again of an alarm that still stands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from hotline.errors import ConfigError
from hotline.protocol.clock import clock_fault, skew_text, utc_text
from hotline.protocol.envelope import Envelope, Lane, MessageType, decode_envelope
from hotline.station.datadir import ConsoleSection
from hotline.station.tls import WARN_DAYS, expires_ns

if TYPE_CHECKING:
    from hotline.station.link_runtime import LinkRuntime
    from hotline.station.runtime import Station
    from hotline.store.base import SqlStore

__all__ = ["Alarm", "Discipline", "test_text"]

log = logging.getLogger("hotline.discipline")
S = 1_000_000_000
REVIEW_EVERY_S = 1.0
# A link or path must stay DOWN this long before it is an alarm: a reconnect within a heartbeat
# or two (and a station's first seconds) would otherwise raise and clear alarms by the dozen.
DOWN_HOLD_NS = 3 * S
FAILOVER_ALARM_NS = 86_400 * S  # a failover's alarm stands this long (unless silenced)
# After a start, an alarm the webhook was told of before is not said to have cleared until this
# long has passed: a link is DOWN for its first seconds, and its alarm comes back after them.
RESTART_GRACE_NS = 30 * S
# The store's setting: {"webhook": its URL, "alarms": {alarm id: the alarm as it was last told}}.
# Another URL is another listener, told afresh.
TOLD = "webhook_told"

# The test text carries every letter of both languages (Latin and Cyrillic, both cases, Ё and
# ё), the digits and the punctuation an operator types, so a link that mangles any of them
# fails its test visibly. The number and the time change every time.
_LATIN = "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG / the quick brown fox jumps over the lazy dog"
_CYRILLIC = (
    "СЪЕШЬ ЖЕ ЕЩЁ ЭТИХ МЯГКИХ ФРАНЦУЗСКИХ БУЛОК, ДА ВЫПЕЙ ЧАЮ / "
    "съешь же ещё этих мягких французских булок, да выпей чаю"
)
_SIGNS = "0123456789 .,:;!?-()«»\"'/@#%&*+=№"


def test_text(station: str, number: int, now_ns: int) -> str:
    when = datetime.fromtimestamp(now_ns / S, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"LINK TEST {number} from {station} at {when}\n{_LATIN}\n{_CYRILLIC}\n{_SIGNS}"


@dataclass(slots=True)
class Alarm:
    id: str
    kind: str  # flash, link_down, path_down, test_failed, test_missing, overdue, missed_call,
    # clock_fault, certificate, failover (station-wide: `link` is empty), peer_failover
    link: str
    text: str
    raised_ns: int
    level: int = 1
    silenced_by: str | None = None
    message: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "link": self.link,
            "text": self.text,
            "raised_ns": self.raised_ns,
            "level": self.level,
            "silenced": self.silenced_by is not None,
            "message": self.message,
        }


@dataclass(slots=True)
class _Found:
    kind: str
    link: str
    text: str
    since_ns: int  # when the cause began: an alarm raised late still says since when
    message: dict[str, Any] | None = None


@dataclass(slots=True)
class LinkTests:
    last_sent: dict[str, Any] | None = None  # {sent_ns, state, receipted_ns}
    last_received_ns: int | None = None
    failing_since_ns: int | None = None  # the first failed test's time, until one passes


@dataclass
class Discipline:
    station: Station
    settings: ConsoleSection
    alarms: dict[str, Alarm] = field(default_factory=dict)
    tests: dict[str, LinkTests] = field(default_factory=dict)
    exercise: bool = False  # exercise mode, as supervisors set it (kept in the store)
    _webhooks: set[asyncio.Task[None]] = field(default_factory=set)
    _told: dict[str, dict[str, Any]] | None = None  # None: not read from the store yet
    _told_changed: bool = False
    _sent_at: dict[tuple[str, int, int], int] = field(default_factory=dict)  # the peer's sent_ns
    _reviewing: asyncio.Lock = field(default_factory=asyncio.Lock)  # one review at a time
    _certificate: tuple[str, int | None] | None = None  # the console's: its file, its end

    async def run(self) -> None:
        """Review every second, and at once when a FLASH arrives: it must not wait."""
        assert self.station.store is not None
        self.exercise = await self.station.store.call(lambda s: s.setting("exercise", "0")) == "1"
        flash = self.station.hub.flash_arrived
        while True:
            flash.clear()
            try:
                await self.review(time.time_ns())
            except Exception:  # a review that fails must not end the discipline for good
                log.exception("the alarm review failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(flash.wait(), REVIEW_EVERY_S)

    async def review(self, now_ns: int) -> None:
        """Work out the alarms afresh. One at a time: a review that read the store before an
        acknowledgement must not raise again an alarm a later one has just cleared."""
        async with self._reviewing:
            await self._review(now_ns)

    async def _review(self, now_ns: int) -> None:
        store = self.station.store
        webhook = self.settings.webhook
        if self._told is None and webhook and store is not None:
            kept = json.loads(await store.call(lambda s: s.setting(TOLD, "{}")))
            self._told = kept.get("alarms", {}) if kept.get("webhook") == webhook else {}
        found: dict[str, _Found] = {}
        for runtime in self.station.links.values():
            await self._send_test_if_due(runtime, now_ns)
            found.update(self._link_alarms(runtime, now_ns))
            found.update(await self._traffic_alarms(runtime, now_ns))
            found.update(await self._clock_alarm(runtime))
        found.update(self._certificate_alarm(now_ns))
        found.update(self._failover_alarm(now_ns))
        for runtime in self.station.links.values():
            found.update(_peer_failover_alarm(runtime, now_ns))
        overdue = {a for a in self.alarms if a.startswith("overdue:")}
        changed = self._apply(found, now_ns)
        if changed:
            self.station.hub.publish({"type": "alarms"})
        if overdue != {a for a in self.alarms if a.startswith("overdue:")}:
            self.station.hub.publish({"type": "overdue"})  # the lists mark it: they reload
        if self._told is not None and self._told_changed and store is not None:
            told = json.dumps({"webhook": webhook, "alarms": self._told}, ensure_ascii=False)
            await store.call(lambda s: s.set_setting(TOLD, told))
            self._told_changed = False

    # -- tests -----------------------------------------------------------------------------------

    async def _send_test_if_due(self, runtime: LinkRuntime, now_ns: int) -> None:
        link_id = runtime.link.config.link_id
        sent = await runtime.store.call(lambda s: s.last_sent(link_id, MessageType.TEST))
        received = await runtime.store.call(lambda s: s.last_received(link_id, MessageType.TEST))
        tests = self.tests.setdefault(runtime.link.name, LinkTests())
        tests.last_received_ns = received[2] if received else None
        if sent is None or now_ns - sent[2] >= self.settings.test_interval_s * S:
            # Numbered by the link's tests so far, which a restart does not reset.
            number = await runtime.store.call(lambda s: s.sent_count(link_id, MessageType.TEST))
            text = test_text(self.station.card.body.name, number + 1, now_ns)
            envelope = await runtime.send(Lane.ROUTINE, MessageType.TEST, "en", text)
            log.info("link %s: test %s sent", runtime.link.name, envelope.seq)
            sent = (Lane.ROUTINE, envelope.seq, now_ns, None)
        _lane, _seq, accepted_ns, receipted_ns = sent
        deadline_ns = self.settings.test_deadline_s * S
        if receipted_ns is not None:
            state = "passed" if receipted_ns - accepted_ns <= deadline_ns else "late"
        elif now_ns - accepted_ns > deadline_ns:
            state = "failed"
        else:
            state = "waiting"
        tests.last_sent = {"sent_ns": accepted_ns, "state": state, "receipted_ns": receipted_ns}
        # A failed test stays an alarm while the next one is still on its way: only a test
        # that arrives in time ends it (else it would clear and come back every interval).
        if state == "failed" and tests.failing_since_ns is None:
            tests.failing_since_ns = accepted_ns
        elif state in ("passed", "late"):
            tests.failing_since_ns = None

    # -- finding causes --------------------------------------------------------------------------

    def _link_alarms(self, runtime: LinkRuntime, now_ns: int) -> dict[str, _Found]:
        name = runtime.link.name
        found: dict[str, _Found] = {}
        # One outage, one alarm: a link that is DOWN is the alarm, not each of its paths too.
        if runtime.state == "DOWN" and now_ns - runtime.since_ns > DOWN_HOLD_NS:
            why = runtime.down_reason()
            found[f"link_down:{name}"] = _Found(
                "link_down", name, f"link {name} is DOWN{_why(why)}", runtime.since_ns
            )
        for path in runtime.paths.values() if runtime.state != "DOWN" else ():
            if path.state == "DOWN" and now_ns - path.since_ns > DOWN_HOLD_NS:
                found[f"path_down:{name}:{path.address}"] = _Found(
                    "path_down",
                    name,
                    f"link {name}: path {path.address} is DOWN{_why(path.reason)}",
                    path.since_ns,
                )
        desk = runtime.calls
        for call in desk.missed.values() if desk is not None else ():
            found[f"missed_call:{name}:{call.call_id.hex()}"] = _Found(
                "missed_call",
                name,
                f"{Lane(call.lane).name} call from {call.caller} ({call.caller_role}) at "
                f"{runtime.link.peer_card.body.name} was not answered",
                call.invited_ns,
            )
        tests = self.tests.get(name)
        if tests and tests.failing_since_ns is not None:
            found[f"test_failed:{name}"] = _Found(
                "test_failed",
                name,
                f"link {name}: our test of {_clock(tests.failing_since_ns)} was not "
                f"receipted within {self.settings.test_deadline_s} s",
                tests.failing_since_ns,
            )
        expected_since = max(
            (tests.last_received_ns if tests and tests.last_received_ns else 0),
            self.station.started_ns,
        )
        grace_ns = self.settings.test_interval_s * S + self.settings.test_deadline_s * S
        if now_ns - expected_since > grace_ns:
            found[f"test_missing:{name}"] = _Found(
                "test_missing",
                name,
                f"link {name}: no test from {runtime.link.peer_card.body.name} since "
                f"{_clock(expected_since)}",
                expected_since + grace_ns,
            )
        return found

    async def _traffic_alarms(self, runtime: LinkRuntime, now_ns: int) -> dict[str, _Found]:
        name, config = runtime.link.name, runtime.link.config
        link_id = config.link_id
        flashes = await runtime.store.call(lambda s: s.unacknowledged_inbound(link_id, Lane.FLASH))
        deadlines = self.settings.deadlines
        cutoffs = [now_ns - deadlines.for_lane(lane.name) * S for lane in Lane]  # accepted before
        late = await runtime.store.call(lambda s: s.overdue(link_id, cutoffs))
        found: dict[str, _Found] = {}
        for seq, received_ns, kind in flashes:  # every one: the count is exact (item 8)
            message = _ref(name, "in", Lane.FLASH, seq, kind, received_ns=received_ns)
            found[f"flash:{name}:{seq}"] = _Found(
                "flash",
                name,
                f"{_drill(kind)}FLASH from {runtime.link.peer_card.body.name}",
                received_ns,
                message,
            )
        found.update(await self._overdue_here(runtime, now_ns))
        for lane, seq, accepted_ns, kind in late:
            message = _ref(name, "out", lane, seq, kind, accepted_ns=accepted_ns)
            found[f"overdue:{name}:{Lane(lane).name}:{seq}"] = _Found(
                "overdue",
                name,
                f"{_drill(kind)}link {name}: {Lane(lane).name} {seq} not acknowledged by a "
                f"person at {runtime.link.peer_card.body.name} since {_clock(accepted_ns)}",
                deadlines.due_ns(Lane(lane).name, accepted_ns),
                message,
            )
        return found

    async def _overdue_here(self, runtime: LinkRuntime, now_ns: int) -> dict[str, _Found]:
        """The peer's principal messages that no person here has acknowledged by their deadline
        (Deadlines.due_in_ns: from when they were sent, as the sender counts). The store picks
        those received before the cutoff less the clock fault bound; each one's date is read
        once (its envelope is not read again every second)."""
        name, link_id = runtime.link.name, runtime.link.config.link_id
        deadlines, bound = self.settings.deadlines, self.settings.clock_fault_s * S
        # An incoming FLASH is an alarm from the moment it arrives until a person acknowledges
        # it, escalating as any: its deadline raises no second one (cutoff 0: none before).
        cutoffs = [
            now_ns - deadlines.for_lane(lane.name) * S + bound if lane != Lane.FLASH else 0
            for lane in Lane
        ]
        candidates = await runtime.store.call(lambda s: s.overdue_inbound(link_id, cutoffs))
        found: dict[str, _Found] = {}
        for lane, seq, received_ns, kind in candidates:
            key = (name, lane, seq)
            if key not in self._sent_at:
                data = await runtime.store.call(partial(_inbound, link_id, lane, seq))
                if data is None:
                    continue
                self._sent_at[key] = decode_envelope(bytes(data), None).body.sent_ns
            lane_name = Lane(lane).name
            due_ns = deadlines.due_in_ns(lane_name, self._sent_at[key], received_ns, bound)
            if due_ns >= now_ns:
                continue
            message = _ref(name, "in", lane, seq, kind, received_ns=received_ns)
            message["deadline_ns"] = due_ns
            found[f"overdue:{name}:in:{lane_name}:{seq}"] = _Found(
                "overdue",
                name,
                f"{_drill(kind)}link {name}: {lane_name} {seq} from "
                f"{runtime.link.peer_card.body.name} not acknowledged by a person here since "
                f"{_clock(received_ns)}: due {_clock(due_ns)}",
                due_ns,
                message,
            )
        # Forget the dates of messages acknowledged (or no longer near their deadline).
        keep = {(name, lane, seq) for lane, seq, _r, _k in candidates}
        for key in [k for k in self._sent_at if k[0] == name and k not in keep]:
            del self._sent_at[key]
        return found

    async def _clock_alarm(self, runtime: LinkRuntime) -> dict[str, _Found]:
        """The peer's newest envelope is dated further from our clock than the bound: the
        peer's clock is wrong (or the peer says so) until an envelope dated rightly arrives
        (hotline.protocol.clock). Each faulty envelope is in the audit log as well."""
        name, link_id = runtime.link.name, runtime.link.config.link_id
        newest = await runtime.store.call(lambda s: s.inbox(link_id, 1))
        if not newest:
            return {}
        lane, seq, _type, received_ns, _acked, data = newest[0]
        envelope, message = _message(data, name, "in", received_ns=received_ns)
        sent_ns = envelope.body.sent_ns
        if not clock_fault(sent_ns, received_ns, self.settings.clock_fault_s * S):
            return {}
        text = (
            f"link {name}: the clock of {runtime.link.peer_card.body.name} is wrong: its "
            f"{Lane(lane).name} {seq} is dated {utc_text(sent_ns)}, received "
            f"{utc_text(received_ns)} ({skew_text(sent_ns - received_ns)})"
        )
        message["clock_fault"] = True
        return {f"clock_fault:{name}": _Found("clock_fault", name, text, received_ns, message)}

    def _certificate_alarm(self, now_ns: int) -> dict[str, _Found]:
        """The certificate the console serves (read once, as it was loaded at the start), from
        WARN_DAYS before it ends: browsers refuse an expired one, and every operator with it."""
        cert = self.settings.tls_cert
        if not cert:
            return {}
        if self._certificate is None or self._certificate[0] != cert:
            try:
                self._certificate = (cert, expires_ns(Path(cert)))
            except ConfigError as exc:
                log.error("the console's certificate: %s", exc)
                self._certificate = (cert, None)
        ends_ns = self._certificate[1]
        warn_ns = (ends_ns or 0) - WARN_DAYS * 86_400 * S
        if ends_ns is None or now_ns < warn_ns:
            return {}
        ours = Path(cert).resolve() == self.station.data.console_cert_file.resolve()
        how = "`hotline tls renew`, then restart" if ours else "renew it where it was issued"
        when = "expired" if now_ns >= ends_ns else "expires"
        text = f"the console's TLS certificate {when} on {_clock(ends_ns)}: {how}"
        return {"certificate": _Found("certificate", "", text, warn_ns)}

    def _failover_alarm(self, now_ns: int) -> dict[str, _Found]:
        """This node took the side over from one whose lease expired (it died, hung or was cut
        off): for a day, or until silenced, people here must know (docs/operations.md)."""
        node = self.station.node
        lease = node.lease if node is not None else None
        if lease is None or not lease.failover or now_ns - lease.taken_ns > FAILOVER_ALARM_NS:
            return {}
        text = f"this side failed over at {_clock(lease.taken_ns)}: node {lease.node!r} is "
        text += f"active (epoch {lease.epoch}); {lease.why()}"
        return {"failover": _Found("failover", "", text, lease.taken_ns)}

    # -- raising, escalating, clearing -----------------------------------------------------------

    def _apply(self, found: dict[str, _Found], now_ns: int) -> bool:
        changed = False
        raised: list[Alarm] = []
        escalated: list[Alarm] = []
        for alarm_id in [a for a in self.alarms if a not in found]:
            gone = self.alarms.pop(alarm_id)
            log.warning("alarm cleared: %s", gone.text)
            self._notify("cleared", gone)
            changed = True
        self._forget_told(found, now_ns)
        for alarm_id, cause in found.items():
            alarm = self.alarms.get(alarm_id)
            if alarm is None:
                raised_ns = min(cause.since_ns, now_ns)
                new = Alarm(alarm_id, cause.kind, cause.link, cause.text, raised_ns)
                new.message = cause.message
                self.alarms[alarm_id] = new
                raised.append(new)
                told = (self._told or {}).get(alarm_id)
                if told is None:
                    self._notify("raised", new)
                else:  # told before a restart: not again, nor escalated again
                    new.level = max(new.level, int(told.get("level", 1)))
                changed = True
            elif (
                alarm.level == 1
                and alarm.silenced_by is None
                and now_ns - alarm.raised_ns > self.settings.escalate_after_s * S
            ):
                alarm.level = 2
                escalated.append(alarm)
                self._notify("escalated", alarm)
                changed = True
        _log_alarms("ALARM", raised, logging.WARNING)
        _log_alarms("ALARM ESCALATED", escalated, logging.ERROR)
        return changed

    def silence(self, alarm_id: str, by: str) -> Alarm | None:
        alarm = self.alarms.get(alarm_id)
        if alarm is not None and alarm.silenced_by is None:
            alarm.silenced_by = by
            self.station.hub.publish({"type": "alarms"})
        return alarm

    def silence_all(self, kind: str, by: str) -> list[Alarm]:
        """Silence every standing alarm of a kind nobody has silenced: one button must stop a
        flood's noise (item 8), and every console redraws once, not once per alarm."""
        quiet = [a for a in self.alarms.values() if a.kind == kind and a.silenced_by is None]
        for alarm in quiet:
            alarm.silenced_by = by
        if quiet:
            self.station.hub.publish({"type": "alarms"})
        return quiet

    def _forget_told(self, found: dict[str, _Found], now_ns: int) -> None:
        """Alarms the webhook was told of before a restart whose cause has gone: cleared, once
        the station has run long enough for every standing cause to be found again."""
        if not self._told or now_ns - self.station.started_ns < RESTART_GRACE_NS:
            return
        for alarm_id in [a for a in self._told if a not in found and a not in self.alarms]:
            self._tell("cleared", self._told.pop(alarm_id))
            self._told_changed = True

    def _notify(self, what: str, alarm: Alarm) -> None:
        if not self.settings.webhook:
            return
        # What happened, never what a message said: the webhook may lead outside the station.
        summary = {**alarm.to_json(), "message": None}
        if alarm.message is not None:
            summary["text"] = f"{alarm.kind} {alarm.message['lane']} {alarm.message['seq']}"
        if self._told is not None:
            if what == "cleared":
                self._told.pop(alarm.id, None)
            else:
                self._told[alarm.id] = summary
            self._told_changed = True
        self._tell(what, summary)

    def _tell(self, what: str, summary: dict[str, Any]) -> None:
        body = {"event": what, "station": self.station.card.body.name, "alarm": summary}
        task = asyncio.create_task(_post(self.settings.webhook, body))
        self._webhooks.add(task)
        task.add_done_callback(self._webhooks.discard)


async def _post(url: str, body: dict[str, Any]) -> None:
    """One try, five seconds: a webhook that is down must not hold up the station; the alarm
    stays on the console, and its escalation tries the webhook again."""
    try:
        async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
            response = await client.post(
                url,
                content=json.dumps(body, ensure_ascii=False),
                headers={"Content-Type": "application/json"},
            )
        if response.status_code >= 300:
            log.error("webhook %s answered %s", url, response.status_code)
    except httpx.HTTPError as exc:
        log.error("webhook %s failed: %s", url, exc)


def _message(
    data: bytes, link: str, direction: str, **when: int
) -> tuple[Envelope, dict[str, Any]]:
    """A stored envelope (its signature was checked when it was stored), and the alarm's
    reference to it."""
    envelope = decode_envelope(bytes(data), None)
    body = envelope.body
    return envelope, _ref(link, direction, body.lane, body.seq, body.type, **when)


def _ref(link: str, direction: str, lane: int, seq: int, kind: int, **when: int) -> dict[str, Any]:
    """The message an alarm is about, by id: never its text or files (issue 13, item 8). The
    board goes to every console after each change; 120 FLASH of 32 KB made each one 3.25 MB.
    The console fetches what it shows by these ids (GET /console/messages/...)."""
    return {
        "direction": direction,
        "link": link,
        "lane": Lane(lane).name,
        "seq": seq,
        "type": MessageType(kind).name.lower(),
        **when,
    }


def _log_alarms(what: str, alarms: list[Alarm], level: int) -> None:
    """A line per alarm, but one for a link's FLASH alarms raised or escalated together: after
    a restart every FLASH no person has acknowledged is raised again at once, and escalated at
    the next review (each has waited since it arrived), which made hundreds of lines."""
    flashes: dict[str, list[Alarm]] = {}
    for alarm in alarms:
        if alarm.kind == "flash":
            flashes.setdefault(alarm.link, []).append(alarm)
        else:
            log.log(level, "%s %s: %s", what, alarm.kind, alarm.text)
    for link, group in flashes.items():
        if len(group) == 1:
            log.log(level, "%s flash: %s", what, group[0].text)
            continue
        seqs = sorted(int(a.message["seq"]) for a in group if a.message)
        log.log(
            level,
            "%s flash: %d FLASH messages on link %s not acknowledged by a person here (FLASH %s)",
            what, len(group), link, _ranges(seqs),
        )  # fmt: skip


def _ranges(seqs: list[int]) -> str:
    """1, 2, 3, 7, 9, 10 -> "1-3, 7, 9-10"."""
    spans: list[list[int]] = []
    for seq in seqs:
        if spans and seq == spans[-1][1] + 1:
            spans[-1][1] = seq
        else:
            spans.append([seq, seq])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in spans)


def _inbound(link_id: bytes, lane: int, seq: int, store: SqlStore) -> bytes | None:
    return store.inbound(link_id, lane, seq)


def _why(reason: str) -> str:
    return f": {reason}" if reason else ""


def _drill(kind: int) -> str:
    return "EXERCISE " if kind == MessageType.EXERCISE else ""


def _clock(ns: int) -> str:
    return datetime.fromtimestamp(ns / S, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _peer_failover_alarm(runtime: LinkRuntime, now_ns: int) -> dict[str, _Found]:
    """The peer's side answers from another of its nodes than before: it failed over (its
    active node died, hung or was cut off). People here must know, for a day or until
    silenced, as the side that failed over knows (`_failover_alarm`)."""
    if runtime.peer_failover is None:
        return {}
    before, now, at_ns = runtime.peer_failover
    if now_ns - at_ns > FAILOVER_ALARM_NS:
        return {}
    name, peer = runtime.link.name, runtime.link.peer_card.body.name
    addresses = ", ".join(runtime.nodes[now])
    text = (
        f"{peer} failed over at {_clock(at_ns)}: its node {now + 1} ({addresses}) answers now, "
        f"node {before + 1} did before"
    )
    return {f"peer_failover:{name}": _Found("peer_failover", name, text, at_ns)}
