"""Which upstream stream served which client stream of a target, and on what basis.

Each target has its own fake upstream (``upstream@<target>``), so every record in upstream_streams.csv whose
``target`` is the target's name is that target's: whose stream it is never needs guessing, only which of the
target's client streams it served. The basis of that pairing, per target:

    id:prompt, id:header, id:user, id:query
                 the stream id of the client arrived at the upstream (``id_channel``: in the prompt's harness tag,
                 as X-Request-ID, as the body's ``user``, in the query string); pairs are exact
    id:response  no id arrived, but the upstream's own id came back to the client in the response's first event
                 (clients.csv ``upstream_id``, harness.load.echo): pairs are exact; the streams whose client read
                 no byte of the body are paired by time order among themselves
    time order   no id arrived: each upstream stream, in the order they started, is paired with the nearest
                 earlier client stream of the target not yet paired (the latest one that started before it). The
                 nearest, not the oldest, so a client that never reached the upstream (it left before the server
                 called out) leaves one client unpaired instead of shifting every later pair by one
    aggregate    there are no upstream records to pair (the upstream never saw a request, or its records could not
                 be fetched): only counts over time remain

Records of a run with one upstream shared by every target (``target`` blank, older runs) are paired by id only: by
time they could be anyone's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analyse.run_data import RunData

__all__ = ["BASES", "ID_CHANNELS", "MATCHED_COLUMNS", "Attribution", "attribute", "pair_by_time"]

ID_CHANNELS = ("prompt", "header", "user", "query")
BASES = (*(f"id:{channel}" for channel in ID_CHANNELS), "id:response", "time order", "aggregate")
MATCHED_COLUMNS = (
    "stream_id",
    "outcome",
    "leave_when",
    "behaviour",
    "client_start",
    "client_first_token",
    "client_end",
    "client_tokens",
    "client_bytes",
    "up_id",
    "up_start",
    "up_first_token",
    "up_end",
    "tokens_sent",
    "bytes_sent",
    "end_reason",
    "exact",
)
"""One row per pair: the client's record (client_*), the upstream's (up_*, tokens_sent, bytes_sent, end_reason),
and ``exact``: paired by an id (the client's, or the upstream's read back), not by time order."""

_ID_SHARE = 0.5
"""The id basis holds when at least this share of the target's upstream records carry one of its stream ids."""
_NEVER_REACHED = ("connect_error",)
"""Client outcomes that cannot have reached the upstream (time order never pairs them)."""


@dataclass(frozen=True, slots=True)
class Attribution:
    """One target's client streams paired with its upstream's records."""

    target: str
    basis: str
    """One of BASES."""
    matched: pd.DataFrame
    """MATCHED_COLUMNS, one row per pair."""
    clients: pd.DataFrame
    """The target's clients.csv rows."""
    upstream: pd.DataFrame
    """The target's upstream_streams.csv rows (its own upstream's, or, in a shared-upstream run, those its ids name)."""
    own_upstream: bool
    """Whether the target had an upstream of its own (records tagged with its name, or stats rows upstream_of it)."""
    id_channels: dict[str, int]
    """How many of the upstream's records had their id arrive by each channel ("none": the upstream made one up)."""
    note: str

    @property
    def unmatched_upstream(self) -> int:
        return len(self.upstream) - len(self.matched)

    @property
    def unmatched_clients(self) -> int:
        return len(self.clients) - len(self.matched)


def _own_records(run: RunData, target: str) -> tuple[pd.DataFrame, bool]:
    records = run.upstream_streams
    tagged = records["target"].astype(str) if "target" in records else pd.Series("", index=records.index)
    own = records[tagged == target]
    has_stats = "upstream_of" in run.stats and bool((run.stats["upstream_of"] == target).any())
    if len(own) or has_stats:
        return own.drop_duplicates("id", keep="last"), True
    ids = set(run.clients.loc[run.clients["target"] == target, "stream_id"])
    shared = records[(tagged == "") & records["id"].isin(ids)]
    return shared.drop_duplicates("id", keep="last"), False


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A numeric column, NaN where the record has none (records written before it existed)."""
    if name not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)


def _pairs(clients: pd.DataFrame, upstream: pd.DataFrame, *, exact: bool) -> pd.DataFrame:
    """Pair rows position by position (both frames the same length, already aligned)."""
    return pd.DataFrame(
        {
            "stream_id": clients["stream_id"].to_numpy(),
            "outcome": clients["outcome"].to_numpy(),
            "leave_when": clients["leave_when"].to_numpy(),
            "behaviour": clients["behaviour"].to_numpy(),
            "client_start": clients["start"].to_numpy(dtype=float),
            "client_first_token": clients["first_token"].to_numpy(dtype=float),
            "client_end": clients["end"].to_numpy(dtype=float),
            "client_tokens": clients["tokens"].to_numpy(dtype=float),
            "client_bytes": _column(clients, "bytes"),
            "up_id": upstream["id"].to_numpy(),
            "up_start": upstream["start"].to_numpy(dtype=float),
            "up_first_token": upstream["first_token"].to_numpy(dtype=float),
            "up_end": upstream["end"].to_numpy(dtype=float),
            "tokens_sent": upstream["tokens_sent"].to_numpy(dtype=float),
            "bytes_sent": _column(upstream, "bytes_sent"),
            "end_reason": upstream["end_reason"].to_numpy(),
            "exact": np.full(len(clients), exact),
        },
        columns=list(MATCHED_COLUMNS),
    )


def pair_by_time(client_starts: np.ndarray, upstream_starts: np.ndarray) -> list[tuple[int, int]]:
    """(client index, upstream index) pairs: each upstream start, in increasing order, takes the latest client
    start at or before it that no earlier upstream stream took. Disjoint-set "previous free slot" lookups keep it
    O(n log n) for the sorts and near-linear after."""
    client_order = np.argsort(client_starts, kind="stable")
    sorted_clients = client_starts[client_order]
    free = list(range(len(sorted_clients) + 1))  # free[i + 1]: the nearest free slot at or before i, plus one

    def find(slot: int) -> int:
        root = slot
        while free[root] != root:
            root = free[root]
        while free[slot] != root:
            free[slot], slot = root, free[slot]
        return root

    pairs = []
    for up_index in np.argsort(upstream_starts, kind="stable"):
        last = int(np.searchsorted(sorted_clients, upstream_starts[up_index], side="right"))
        slot = find(last)
        if slot == 0:
            continue  # no client left that started before this upstream stream
        free[slot] = slot - 1
        pairs.append((int(client_order[slot - 1]), int(up_index)))
    return pairs


def _channel(records: pd.DataFrame) -> str:
    channels = Counter(str(value) for value in records.get("id_channel", pd.Series(dtype=str)) if str(value))
    best = max((channel for channel in channels if channel in ID_CHANNELS), key=channels.__getitem__, default=None)
    return best or "header"  # records from before id_channel existed: the relays forwarded X-Request-ID


def _by_echo_then_time(
    clients: pd.DataFrame, upstream: pd.DataFrame, *, ignore_ids: bool
) -> tuple[str, pd.DataFrame, str]:
    """Pairs by the upstream's own id read back from the response (clients.csv upstream_id), then by time order
    among the streams left over (those whose client read no byte of the body: it left before the headers or while
    the upstream was silent, or the server rebuilt the response)."""
    echoed = clients["upstream_id"].astype(str) if "upstream_id" in clients and not ignore_ids else None
    known = set(upstream["id"])
    by_echo = clients[echoed.isin(known)].drop_duplicates("upstream_id") if echoed is not None else clients.iloc[:0]
    echo_pairs = _pairs(by_echo, upstream.set_index("id", drop=False).loc[by_echo["upstream_id"]], exact=True)
    rest_clients = clients[~clients.index.isin(by_echo.index) & ~clients["outcome"].isin(_NEVER_REACHED)]
    rest_upstream = upstream[~upstream["id"].isin(set(by_echo["upstream_id"]))]
    pairs = pair_by_time(rest_clients["start"].to_numpy(dtype=float), rest_upstream["start"].to_numpy(dtype=float))
    time_pairs = _pairs(
        rest_clients.iloc[[c for c, _ in pairs]], rest_upstream.iloc[[u for _, u in pairs]], exact=False
    )
    matched = pd.concat([echo_pairs, time_pairs], ignore_index=True) if len(echo_pairs) else time_pairs
    if len(echo_pairs) >= _ID_SHARE * len(upstream):
        note = (
            f"no stream id reached the upstream, but its own came back in the response: {len(echo_pairs)} of "
            f"{len(upstream)} upstream streams paired by it, {len(time_pairs)} more by time order"
        )
        return "id:response", matched, note
    note = (
        f"no stream id reached the upstream: {len(time_pairs)} of {len(upstream)} upstream streams paired with client "
        f"streams by time order (each with the nearest earlier client stream not yet paired)"
        + (f", {len(echo_pairs)} by the upstream's id read back from the response" if len(echo_pairs) else "")
    )
    return "time order", matched, note


def attribute(run: RunData, target: str, *, ignore_ids: bool = False) -> Attribution:
    """The target's pairs and their basis (see the module's docstring); ``ignore_ids``: pair by time order even
    where ids arrived (to check time order against the ids' exact pairs)."""
    clients = run.clients[run.clients["target"] == target]
    upstream, own = _own_records(run, target)
    channels = dict(Counter(str(value) or "unrecorded" for value in upstream.get("id_channel", [])))
    by_id = upstream[upstream["id"].isin(set(clients["stream_id"]))]
    if len(upstream) and len(by_id) >= _ID_SHARE * len(upstream) and not ignore_ids:
        paired_clients = clients[clients["stream_id"].isin(set(by_id["id"]))].drop_duplicates("stream_id")
        paired_upstream = by_id.set_index("id", drop=False).loc[paired_clients["stream_id"]]
        basis = f"id:{_channel(by_id)}"
        matched = _pairs(paired_clients, paired_upstream, exact=True)
        note = f"{len(matched)} of {len(clients)} client streams paired with upstream records by stream id ({basis})"
    elif len(upstream) and own:
        basis, matched, note = _by_echo_then_time(clients, upstream, ignore_ids=ignore_ids)
    else:
        basis, matched = "aggregate", _pairs(clients.iloc[:0], upstream.iloc[:0], exact=True)
        if own:
            note = "no upstream stream was ever opened by this target"
        else:
            note = "this target has no fake upstream of its own and none of its stream ids reached a shared one"
    return Attribution(target, basis, matched, clients, upstream, own, channels, note)
