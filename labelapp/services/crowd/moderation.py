"""Console moderation (issue #24): void a volunteer's votes, block a client address range.

* :func:`void_volunteer_votes` deletes every vote of one volunteer in one transaction,
  reverses what their gold answers taught the skill model, recomputes the live consensus
  of every candidate they voted on, and re-opens a candidate retired by votes that no longer
  settle it (a retired candidate that is still settled without them stays retired). The
  audit record keeps what was voided (each vote's detectid, answer, time) and which
  candidates were re-opened.
* :func:`block_address_range` / :func:`unblock_address_range`: the vote API refuses votes
  and new volunteers from blocked client addresses (``is_blocked``). The list lives in the
  audit log itself (block / unblock events, replayed in order), so no table is needed and
  every change is recorded; each web process re-reads it at most every BLOCK_REFRESH_S.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from django.db import transaction

from labelapp.errors import InvalidInput
from labelapp.models import AuditEvent, Candidate, Volunteer, Vote
from labelapp.services.crowd.consensus import forget_vote
from labelapp.services.crowd.peers import credit_peers, reopen_if_unsettled
from labelapp.services.crowd.volunteers import refresh_counters
from labelapp.services.operations.audit import record_audit

VOID_DETAIL_MAX = 5000  # votes listed one by one in the audit record
BLOCK_REFRESH_S = 30.0
MIN_PREFIX = {4: 16, 6: 32}  # the broadest range one block may cover


class ModerationError(InvalidInput):
    pass


@dataclass(frozen=True)
class VoidResult:
    volunteer_id: int
    n_votes: int
    n_candidates: int
    reopened: list[int]  # detectids of candidates no longer settled without the votes


def void_volunteer_votes(*, volunteer_id: int, user, reason: str = "") -> VoidResult:
    """Void every vote of volunteer ``volunteer_id`` (see the module docstring)."""
    with transaction.atomic():
        volunteer = Volunteer.objects.select_for_update().filter(pk=volunteer_id).first()
        if volunteer is None:
            raise ModerationError(f"there is no volunteer #{volunteer_id}")
        votes = list(
            Vote.objects.filter(volunteer=volunteer).select_related("candidate").order_by("pk")
        )
        Vote.objects.filter(pk__in=[v.pk for v in votes]).delete()
        # the peer comparisons their votes gave others go too (after commit, as given)
        credits = [c for v in votes for c in (v.peer_credits or [])]
        if credits:
            transaction.on_commit(lambda: credit_peers(credits, sign=-1), robust=True)
        regular: set[int] = set()
        for v in votes:
            if v.was_gold:
                forget_vote(vote=v)  # takes the answer out of their skill counts
            else:
                regular.add(v.candidate_id)
        reopened = []
        for cid in sorted(regular):
            if reopen_if_unsettled(candidate_id=cid, user=user):
                reopened.append(cid)
        refresh_counters(volunteer=volunteer)
        detectids = dict(Candidate.objects.filter(pk__in=reopened).values_list("pk", "detectid"))
        record_audit(
            user=user,
            action="void_votes",
            target=f"volunteer:{volunteer_id}",
            detail={
                "reason": reason[:500],
                "n_votes": len(votes),
                "n_candidates": len({v.candidate_id for v in votes}),
                "reopened": [detectids[c] for c in reopened],
                "votes": [
                    [v.candidate.detectid, v.answer, v.created_at.isoformat()]
                    for v in votes[:VOID_DETAIL_MAX]
                ],
            },
        )
    return VoidResult(
        volunteer_id=volunteer_id,
        n_votes=len(votes),
        n_candidates=len({v.candidate_id for v in votes}),
        reopened=[detectids[c] for c in reopened],
    )


# --- blocked client address ranges --------------------------------------------------------

_cache: dict = {"at": -1e9, "ranges": ()}


def _parse_range(text: str):
    try:
        net = ipaddress.ip_network(str(text).strip(), strict=False)
    except ValueError:
        raise ModerationError(
            f"{str(text)[:60]!r} is not an address or range (e.g. 203.0.113.0/24, 2001:db8::/48)"
        ) from None
    if net.prefixlen < MIN_PREFIX[net.version]:
        raise ModerationError(
            f"{net} is too broad: block at most a /{MIN_PREFIX[net.version]} at a time"
        )
    return net


def block_address_range(*, cidr: str, user, note: str = "") -> str:
    net = _parse_range(cidr)
    if net in blocked_ranges(fresh=True):
        raise ModerationError(f"{net} is already blocked")
    record_audit(user=user, action="block_address", target=str(net), detail={"note": note[:500]})
    _cache["at"] = -1e9
    return str(net)


def unblock_address_range(*, cidr: str, user) -> str:
    net = _parse_range(cidr)
    if net not in blocked_ranges(fresh=True):
        raise ModerationError(f"{net} is not blocked")
    record_audit(user=user, action="unblock_address", target=str(net))
    _cache["at"] = -1e9
    return str(net)


def blocked_ranges(*, fresh: bool = False) -> tuple:
    """The blocked networks: the audit log's block / unblock events replayed in order."""
    now = time.monotonic()
    if fresh or now - _cache["at"] > BLOCK_REFRESH_S:
        events = AuditEvent.objects.filter(
            action__in=("block_address", "unblock_address")
        ).order_by("created_at", "pk")
        ranges: dict[str, object] = {}
        for action, target in events.values_list("action", "target"):
            if action == "block_address":
                ranges[target] = ipaddress.ip_network(target)
            else:
                ranges.pop(target, None)
        _cache["ranges"], _cache["at"] = tuple(ranges.values()), now
    return _cache["ranges"]


def is_blocked(client_ip: str) -> bool:
    ranges = blocked_ranges()
    if not ranges:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in net for net in ranges)
