"""Prometheus metrics, read from the station's live state at each scrape (nothing is counted
twice, nothing drifts): link and path states, round-trip times, envelopes per lane, backlog."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from hotline.protocol.envelope import LANES

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


def metrics_text(station: Station) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StationCollector(station))
    return generate_latest(registry)
