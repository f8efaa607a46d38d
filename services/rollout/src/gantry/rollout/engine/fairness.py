"""Max-min fair division of a capacity (batch slots, prefill tokens) among clients."""

from __future__ import annotations

from collections.abc import Mapping


def fair_shares(capacity: int, demand: Mapping[str, int]) -> dict[str, int]:
    """Split `capacity` so no client gets more than it asks for and the smallest share is
    as large as possible (water-filling). Clients earlier in `demand`'s order get the
    remainder when the capacity does not divide evenly."""
    shares = dict.fromkeys(demand, 0)
    hungry = [c for c, d in demand.items() if d > 0]
    left = capacity
    while left > 0 and hungry:
        each = max(1, left // len(hungry))
        for client in list(hungry):
            give = min(each, demand[client] - shares[client], left)
            shares[client] += give
            left -= give
            if shares[client] >= demand[client]:
                hungry.remove(client)
            if left == 0:
                break
    return shares
