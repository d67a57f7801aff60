"""Exchange (EX) addresses: a per-PST map from X500 distinguished names to SMTP addresses.

Exchange stores internal senders and recipients as an X500 DN
(``/O=ORG/OU=.../CN=RECIPIENTS/CN=ANN``) with address type ``EX``; the SMTP address is
often on the item too (PR_SENDER_SMTP_ADDRESS, a recipient row's PR_SMTP_ADDRESS), but not
always: older stores carry it only on some rows. Every (DN, SMTP) pair the file holds, on
any message, builds one map; an address that is still a DN after the item's own properties
is looked up in it.

The map is the file's, so rows written before the whole file was read cannot use it:
the extract defers a shard that has such an address (what it read waits in scratch) and
writes it once every shard has been read (:func:`scan`, :func:`build`, :func:`resolve`),
which keeps the output byte-identical for any worker count or shard plan. Conflicting pairs (one DN, two SMTP addresses) resolve to the
address seen most often, the smaller one on a tie: an order-independent rule.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .items import ReadMessage

#: (DN key, SMTP address) -> how often the file pairs them
Pairs = Counter[tuple[str, str]]
#: DN key -> its SMTP address (None: the file has none for it)
AddressMap = dict[str, "str | None"]


def dn_key(dn: str) -> str:
    """The form DNs are compared in (X500 names are case-insensitive)."""
    return dn.strip().casefold()


def walk(messages: Iterable[ReadMessage]) -> Iterator[ReadMessage]:
    """*messages* and, depth-first, the messages embedded in them."""
    stack = list(messages)[::-1]
    while stack:
        msg = stack.pop()
        yield msg
        stack.extend(att.message for att in reversed(msg.attachments) if att.message is not None)


def _slots(msg: ReadMessage) -> Iterator[tuple[Any, str, str]]:
    """(holder, key, DN) of every place in *msg* (not in embedded ones) where a DN stands
    for an address: the sender, the sent-representing address, a recipient entry, an
    appointment's organizer or attendee (their rows are the recipient rows)."""
    dns = {e["x500"] for entries in (msg.to, msg.cc, msg.bcc) for e in entries if e.get("x500")}
    if msg.sender_x500 is not None:
        dns.add(msg.sender_x500)
        if msg.sender_email == msg.sender_x500:
            yield msg, "sender_email", msg.sender_x500
    if msg.representing_x500 is not None:
        dns.add(msg.representing_x500)
        if msg.sent_representing_email == msg.representing_x500:
            yield msg, "sent_representing_email", msg.representing_x500
    for entries in (msg.to, msg.cc, msg.bcc):
        for entry in entries:
            dn = entry.get("x500")
            if dn is not None and entry["email"] == dn:
                yield entry, "email", dn
    found = msg.item_properties or {}
    for person in [found.get("organizer"), *(found.get("attendees") or [])]:
        if isinstance(person, dict) and person.get("email") in dns:
            yield person, "email", person["email"]


def scan(messages: Iterable[ReadMessage]) -> tuple[Pairs, set[str]]:
    """The (DN, SMTP) pairs *messages* hold, and the keys of the DNs they need resolved."""
    pairs: Pairs = Counter()
    needed: set[str] = set()
    for msg in walk(messages):
        for dn, smtp in msg.address_pairs:
            pairs[(dn_key(dn), smtp)] += 1
        needed.update(dn_key(dn) for _, _, dn in _slots(msg))
    return pairs, needed


def build(pairs: Pairs) -> AddressMap:
    """The map: for each DN, its most frequent SMTP address (the smallest on a tie)."""
    best: dict[str, tuple[int, str]] = {}
    for (key, smtp), count in pairs.items():
        found = best.get(key)
        if found is None or (-count, smtp) < (-found[0], found[1]):
            best[key] = (count, smtp)
    return {key: smtp for key, (_, smtp) in best.items()}


def subset(address_map: Mapping[str, str | None], keys: Iterable[str]) -> AddressMap:
    """What a deferred shard needs of the map (every key, None where the file has no SMTP)."""
    return {key: address_map.get(key) for key in sorted(keys)}


def resolve(messages: Iterable[ReadMessage], address_map: Mapping[str, str | None]) -> None:
    """Replace every DN that stands for an address in *messages* by its SMTP address from
    *address_map*, in place; a DN the map has no address for stays."""
    for msg in walk(messages):
        for holder, key, dn in list(_slots(msg)):
            smtp = address_map.get(dn_key(dn))
            if smtp is None:
                continue
            if holder is msg:
                setattr(msg, key, smtp)
            else:
                holder[key] = smtp


__all__ = ["AddressMap", "Pairs", "build", "dn_key", "resolve", "scan", "subset", "walk"]
