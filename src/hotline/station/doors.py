"""Who acts through the service API, for the audit log (issue 15, item 4): every act that changes
the record or the people is audited whatever its door. The console audits its people by name
(console/); the API audits its caller here: "api" (the bearer of the station's token), or the
station host's user when the `hotline` commands say who runs them, "cli:NAME" in the
X-Hotline-Actor header. The token is certain; the name is the CLI's word for it, as in the
commands that write to the store directly (`hotline operator ...`)."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from starlette.requests import Request

if TYPE_CHECKING:
    from hotline.station.runtime import Station

__all__ = ["ACTOR_HEADER", "acknowledged_by", "audit_api_act", "door"]

ACTOR_HEADER = "X-Hotline-Actor"
_CLAIMED = re.compile(r"cli:[A-Za-z0-9._?-]{1,64}")


def door(claimed: str | None) -> str:
    """The actor an API request is audited as: "cli:NAME" if it says so, else "api"."""
    return claimed if claimed is not None and _CLAIMED.fullmatch(claimed) else "api"


def acknowledged_by(actor: str) -> str:
    """The text of an acknowledgement made through the API without one: who made it, since the
    envelope itself names no person (the console's says "Acknowledged by NAME")."""
    if actor.startswith("cli:"):
        return f"Acknowledged by {actor[4:]} at the station host"
    return "Acknowledged through the station's API"


async def audit_api_act(
    station: Station, request: Request, action: str, detail: str, link_id: bytes | None = None
) -> None:
    """An act made through the API, in its own transaction (sends and acknowledgements are
    audited in the transaction that commits them: link_runtime)."""
    if station.store is None:
        return
    actor, now = door(request.headers.get(ACTOR_HEADER)), time.time_ns()
    await station.store.call(lambda s: s.audit_person(actor, action, detail, now, link_id))
