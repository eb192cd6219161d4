"""Sends retried through a kill storm: two real `hotline serve` processes on loopback, SIGKILLed
again and again while clients send, each send named by an Idempotency-Key and tried again until
an answer comes, as `hotline send` does.

    .venv/bin/python bench/killstorm.py [--kills 30] [--senders 4] [--no-keys]

Each of --kills rounds waits 1 to 4 s (random), then SIGKILLs London (the station the clients
send to) or Moscow, chosen at random, and starts it again 0.2 s later; the clients keep sending
throughout (one request in flight each; a request that gets no answer, because London is dead or
restarting, is tried again every 50 ms with the same key). Then the storm stops, every client's
last send is answered, and both stations must agree. Prints `name: value` lines:

  kills, kills_london, storm_s: what the storm was.
  sends: the sends the clients made (distinct keys), each answered once in the end.
  tries_without_answer: requests that got no answer (connection refused or reset, a timeout).
  answered_as_repeat: answers of 200, a repeat answered with the message an earlier try made:
      each is a message that was accepted while its client did not hear it.
  sent_twice: messages in London's outbox beyond one per send (the figure the keys hold at 0).
  lost: sends answered as accepted that are not in Moscow's inbox after the storm (0).
  agreement: whether both chains, receipts and checkpoints agree at the end.

--no-keys sends without keys, as clients did before sends could be retried: sent_twice is then
what a retry costs without them. Not a test: it asserts nothing. Every loop is bounded in count
and time; 30 kills take about two minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from hotline.protocol.envelope import decode_envelope
from hotline.station.launch import StationProcess, make_pair
from hotline.store.sqlite import SqliteStore

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helpers of bench/e2e.py
from e2e import emit

RETRY_S = 0.05
SEND_DEADLINE_S = 120.0  # a client gives up on one send after this long without an answer
SETTLE_S = 120.0


class Client(threading.Thread):
    """One sender: a message at a time to London, each tried until answered."""

    def __init__(self, london: StationProcess, name: str, keyed: bool, stop: threading.Event):
        super().__init__(name=name, daemon=True)
        self.url = f"{london.api}/api/v1/links/moscow/messages"
        self.token = london.data.api_token()
        self.keyed, self.stop = keyed, stop
        self.answers: dict[str, tuple[int, str, int]] = {}  # key: (status, lane, seq)
        self.unanswered = 0

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(headers=headers, timeout=10) as http:
            for number in range(1_000_000):
                if self.stop.is_set():
                    return
                key = f"{self.name}-{number}"
                body = {"text": f"{key}: stand by", "lane": "PRIORITY"}
                answer = self._send(http, key, body)
                if answer is None:
                    return
                self.answers[key] = answer

    def _send(
        self, http: httpx.Client, key: str, body: dict[str, str]
    ) -> tuple[int, str, int] | None:
        headers = {"Idempotency-Key": key} if self.keyed else {}
        deadline = time.monotonic() + SEND_DEADLINE_S
        while time.monotonic() < deadline:
            try:
                response = http.post(self.url, json=body, headers=headers)
                if response.status_code in (200, 201):
                    result = response.json()
                    return response.status_code, result["lane"], result["seq"]
            except httpx.HTTPError:
                pass
            self.unanswered += 1
            time.sleep(RETRY_S)
        return None


def storm(london: StationProcess, moscow: StationProcess, kills: int, rng: random.Random) -> int:
    killed_london = 0
    for _ in range(kills):
        time.sleep(rng.uniform(1.0, 4.0))
        victim = rng.choice((london, moscow))
        killed_london += victim is london
        victim.kill(signal.SIGKILL)
        time.sleep(0.2)
        victim.start()
    return killed_london


def settle(london: StationProcess) -> bool:
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            link = london.call("GET", "/api/v1/status")["links"][0]
            if link["state"] == "UP" and link["unreceipted"] == 0 and link["in_agreement"]:
                return True
        time.sleep(0.2)
    return False


def principal_texts(station: StationProcess, table: str) -> list[str]:
    store = SqliteStore(station.data.store_file)
    try:
        rows = store._rows(f"SELECT envelope FROM {table} WHERE type = 0")
    finally:
        store.close()
    return [decode_envelope(bytes(data), None).body.text for (data,) in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--no-keys", action="store_true", help="send without Idempotency-Key")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not 1 <= args.kills <= 200 or not 1 <= args.senders <= 32:
        parser.error("--kills is 1 to 200 and --senders 1 to 32")
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="hotline-killstorm-") as directory:
        london, moscow = make_pair(Path(directory))
        try:
            london.start()
            moscow.start()
            stop = threading.Event()
            clients = [Client(london, f"c{n}", not args.no_keys, stop) for n in range(args.senders)]
            started = time.monotonic()
            for client in clients:
                client.start()
            killed_london = storm(london, moscow, args.kills, rng)
            storm_s = time.monotonic() - started
            stop.set()
            for client in clients:
                client.join(SEND_DEADLINE_S + 10)
            agreement = settle(london)
            sent = principal_texts(london, "outbox")
            held = set(principal_texts(moscow, "inbox"))
        finally:
            london.close()
            moscow.close()
    answers = {key: a for client in clients for key, a in client.answers.items()}
    emit("kills", args.kills)
    emit("kills_london", killed_london)
    emit("storm_s", round(storm_s, 1))
    emit("keys", "no" if args.no_keys else "yes")
    emit("sends", len(answers))
    emit("tries_without_answer", sum(c.unanswered for c in clients))
    emit("answered_as_repeat", sum(1 for status, _, _ in answers.values() if status == 200))
    emit("sent_twice", len(sent) - len(set(sent)))
    emit("lost", sum(1 for key in answers if f"{key}: stand by" not in held))
    emit("agreement", agreement)


if __name__ == "__main__":
    main()
