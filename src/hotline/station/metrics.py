"""Prometheus metrics, read from the station's live state at each scrape (nothing is counted
twice, nothing drifts): link and path states, round-trip times, envelopes per lane, backlog, each
call's figures per path, the node's role and lease on a side of several nodes, and what strangers
cost: refused connections on the path ports by kind, connections still in their handshake, slow
or idle HTTP clients closed (docs/operations.md, "Floods")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from hotline.protocol.envelope import LANES
from hotline.station.limits import HeadWaits
from hotline.station.node import node_metrics
from hotline.station.refusals import KINDS

if TYPE_CHECKING:
    from hotline.station.runtime import Station

__all__ = ["metrics_text"]

LINK_STATES = {"DOWN": 0, "DEGRADED": 1, "UP": 2}


class _StationCollector(Collector):
    def __init__(self, station: Station) -> None:
        self.station = station

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        state = GaugeMetricFamily("hotline_link_state", "0 DOWN, 1 DEGRADED, 2 UP", labels=["link"])
        agreed = GaugeMetricFamily(
            "hotline_link_in_agreement", "1 when checkpoints agree", labels=["link"]
        )
        backlog = GaugeMetricFamily(
            "hotline_unreceipted", "our envelopes the peer has not receipted", labels=["link"]
        )
        path_up = GaugeMetricFamily(
            "hotline_path_up", "1 when the path has a live session", labels=["link", "path"]
        )
        rtt = GaugeMetricFamily(
            "hotline_path_rtt_seconds", "round-trip time", labels=["link", "path"]
        )
        sent = CounterMetricFamily(
            "hotline_envelopes_sent", "envelopes accepted", labels=["link", "lane"]
        )
        received = CounterMetricFamily(
            "hotline_envelopes_received", "envelopes held", labels=["link", "lane"]
        )
        for name, runtime in self.station.links.items():
            state.add_metric([name], LINK_STATES[runtime.state])
            core = runtime.core
            if core is not None:
                agreed.add_metric([name], int(core.in_agreement))
                backlog.add_metric([name], core.unreceipted)
                for lane in LANES:
                    sent.add_metric([name, lane.name], core.out.heads[lane].seq)
                    received.add_metric([name, lane.name], core.inbound[lane].seq)
            for path in runtime.paths.values():
                path_up.add_metric([name, path.address], int(path.state == "UP"))
                if path.rtt_ms is not None:
                    rtt.add_metric([name, path.address], path.rtt_ms / 1000)
        yield from (state, agreed, backlog, path_up, rtt, sent, received)
        yield from self._calls()
        yield from self._guards()
        if self.station.node is not None:  # a node of a side on several machines
            yield from node_metrics(self.station.node)

    def _calls(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """Each call in progress: its figures per path, and what its receiver played."""
        calls = GaugeMetricFamily("hotline_calls_active", "calls in progress", labels=["link"])
        labels = ["link", "path"]
        loss = GaugeMetricFamily("hotline_call_path_loss_ratio", "media loss", labels=labels)
        jitter = GaugeMetricFamily("hotline_call_path_jitter_seconds", "jitter", labels=labels)
        rtt = GaugeMetricFamily("hotline_call_path_rtt_seconds", "media round trip", labels=labels)
        first = CounterMetricFamily(
            "hotline_call_path_first_frames", "frames this path delivered first", labels=labels
        )
        played = CounterMetricFamily(
            "hotline_call_frames", "the peer's frames, by fate", labels=["link", "fate"]
        )
        waits = CounterMetricFamily(
            "hotline_call_playout_waits",
            "playout beats that waited for a late packet: it came in time, or in vain",
            labels=["link", "outcome"],
        )
        forged = CounterMetricFamily(
            "hotline_media_datagrams_refused", "media datagrams naming no call of ours"
        )
        forged.add_metric([], self.station.media.unroutable)
        for name, runtime in self.station.links.items():
            statuses = [c for c in runtime.calls.calls() if c.get("media")] if runtime.calls else []
            calls.add_metric([name], len(statuses))
            for status in statuses:
                media = status["media"]
                for fate in ("played", "lost", "concealed", "recovered_fec", "late", "forged"):
                    played.add_metric([name, fate], media["received"].get(fate, 0))
                waited, in_vain = media["received"]["waited"], media["received"]["waited_in_vain"]
                waits.add_metric([name, "came"], waited - in_vain)
                waits.add_metric([name, "in_vain"], in_vain)
                for path in media["paths"]:
                    where = [name, str(path["path"])]
                    loss.add_metric(where, path["loss"])
                    jitter.add_metric(where, path["jitter_ms"] / 1000)
                    first.add_metric(where, path["first"])
                    if path["rtt_ms"] is not None:
                        rtt.add_metric(where, path["rtt_ms"] / 1000)
        yield from (calls, loss, jitter, rtt, first, played, waits, forged)

    def _guards(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        paths = self.station._paths  # the station's own parts: read, never changed
        if paths is not None:
            refused = CounterMetricFamily(
                "hotline_handshakes_refused",
                "path connections refused before a session: mac (no valid first-message MAC, "
                "no Noise work done), handshake (refused by Noise or the replay guard), "
                "incomplete (no whole first message in time), limit (closed by a cap)",
                labels=["kind"],
            )
            for kind in KINDS:
                refused.add_metric([kind], paths.refusals.counts[kind])
            checked = CounterMetricFamily(
                "hotline_handshakes_checked", "first messages with a valid MAC, given to Noise"
            )
            checked.add_metric([], paths.checked)
            accepted = CounterMetricFamily("hotline_handshakes_accepted", "sessions accepted")
            accepted.add_metric([], paths.accepted)
            unaudited = CounterMetricFamily(
                "hotline_refusals_unaudited", "audit rows not written: the hourly limit was reached"
            )
            unaudited.add_metric([], paths.refusals.unaudited)
            pending = GaugeMetricFamily(
                "hotline_handshakes_pending",
                "path connections accepted that have not finished their handshake",
                labels=["listener"],
            )
            for listener in self.station.config.station.listen:
                pending.add_metric([listener], paths.gate.pending(listener))
            yield from (refused, checked, accepted, unaudited, pending)
        closed = CounterMetricFamily(
            "hotline_http_waiting_closed",
            "HTTP connections closed while waiting for a request head, by reason",
            labels=["listener", "reason"],
        )
        for server in self.station._http_servers:
            waits = getattr(server.config.http_protocol_class, "head_waits", None)
            if isinstance(waits, HeadWaits):
                listener = f"{server.config.host}:{server.config.port}"
                for reason in ("head timeout", "head too large", "room made"):
                    closed.add_metric([listener, reason], waits.closed[reason])
        yield closed


def metrics_text(station: Station) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StationCollector(station))
    return generate_latest(registry)
