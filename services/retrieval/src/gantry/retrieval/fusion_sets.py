"""Deterministic retrieval sets that tell hybrid fusion methods apart.

- `identifier_set`: incident notes in groups of paraphrases (same event, different wording);
  each note carries one rare identifier (a ticket or host name) found in no other note. A
  query names the identifier and the kind of event, so the paraphrases are near-duplicates
  for a dense encoder and only the exact token picks the right note.
- `paraphrase_set`: the same notes, queried by a fresh paraphrase of the event with no
  identifier; every note of the event is relevant. Dense matching leads here.
- `pydoc_set`: the Python reference topics shipped with the interpreter (`pydoc_data`),
  each query one sentence cut out of its topic (inverse-cloze style): general prose where
  both lexical and dense evidence count.
"""

from __future__ import annotations

import random
import re

from gantry.retrieval.encoder_eval import EvalDocument, EvalSet

# (what a query calls the event, paraphrases of the event, a fresh paraphrase for queries)
EVENTS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "database disk full",
        (
            "The database host ran out of disk space and stopped accepting writes.",
            "Writes were rejected because the storage volume on the database server was full.",
            "No free space was left on the DB machine's data partition, so inserts failed.",
            "The data disk of the database node filled up and the database went read-only.",
            "Storage exhaustion on the database server blocked every new write.",
        ),
        "the database could not store anything more because its drive had no room left",
    ),
    (
        "expired TLS certificate",
        (
            "The API gateway's TLS certificate expired and clients failed the handshake.",
            "Clients saw handshake errors after the gateway's certificate passed its end date.",
            "An out-of-date X.509 certificate on the gateway broke every HTTPS connection.",
            "Secure connections to the gateway failed because nobody renewed its certificate.",
            "The certificate served by the edge proxy lapsed, so TLS negotiation was refused.",
        ),
        "browsers refused to connect since the gateway's security certificate was too old",
    ),
    (
        "worker out of memory",
        (
            "A memory leak made the worker process grow until the kernel killed it.",
            "The OOM killer terminated the worker after its resident memory kept climbing.",
            "The background worker exhausted its RAM and was stopped by the operating system.",
            "Steadily rising heap usage ended with the worker being killed for lack of memory.",
            "The job runner ran out of memory and crashed after leaking objects for hours.",
        ),
        "the background process used more and more RAM until the system shut it down",
    ),
    (
        "DNS resolution failure",
        (
            "Service names stopped resolving because the internal DNS server was down.",
            "Lookups of internal hostnames failed after the resolver crashed.",
            "The cluster's name server stopped answering, so services could not find each other.",
            "Hostname resolution broke when the DNS cache pods were evicted.",
            "Requests failed with unknown-host errors while name resolution was unavailable.",
        ),
        "services could not translate host names into addresses",
    ),
    (
        "clock skew",
        (
            "The server's clock drifted several minutes and token validation started failing.",
            "NTP stopped syncing, the system time slipped, and signed requests were rejected.",
            "Authentication broke because the machine's time was far ahead of real time.",
            "A wrong system clock made freshly issued tokens look expired.",
            "Time synchronisation failed and the host's clock fell out of step with the rest.",
        ),
        "logins were refused because the computer's time was wrong",
    ),
    (
        "bad config rollout",
        (
            "A configuration change with a typo was deployed and the service failed to start.",
            "The new release shipped a malformed settings file and was rolled back.",
            "An invalid config value pushed to production crashed the service at startup.",
            "The deployment carried a broken configuration, so operators reverted it.",
            "Startup failed after a faulty settings update went live; the change was undone.",
        ),
        "a mistake in the settings of the new version stopped the application from booting",
    ),
    (
        "message queue backlog",
        (
            "Consumers fell behind and the message queue backlog grew to millions of events.",
            "The queue kept filling up because the consumers processed events too slowly.",
            "Consumer lag climbed for hours as messages piled up unprocessed in the broker.",
            "Event processing stalled and unhandled messages accumulated in the queue.",
            "The broker's pending message count exploded while the subscribers lagged.",
        ),
        "events waited longer and longer because nothing was reading them fast enough",
    ),
    (
        "network packet loss",
        (
            "A faulty switch port dropped packets and requests between zones timed out.",
            "Heavy packet loss on a network link caused cross-zone calls to time out.",
            "A bad cable made the uplink lose traffic, so remote calls kept timing out.",
            "Intermittent network drops between data centres led to request timeouts.",
            "Lost packets on the core switch made connections between regions unreliable.",
        ),
        "calls between the two sites kept hanging because traffic was being lost on the wire",
    ),
)
SYLLABLES = ("ka", "ro", "vex", "tul", "mi", "zor", "qua", "ne", "pix", "dal", "sor", "fen")


def _identifiers(rng: random.Random, n: int) -> list[str]:
    """Distinct rare tokens: ticket numbers and made-up host names, mixed."""
    out: set[str] = set()
    while len(out) < n:
        if rng.random() < 0.5:
            out.add(f"INC-{rng.randint(10000, 99999)}")
        else:
            name = "".join(rng.choice(SYLLABLES) for _ in range(2))
            out.add(f"{name}-{rng.choice(('db', 'gw', 'node', 'edge'))}{rng.randint(1, 99):02d}")
    return sorted(out)


def _notes(seed: int) -> tuple[list[EvalDocument], list[tuple[int, str]]]:
    """Every paraphrase as a note with its own identifier: (documents, (event, identifier))."""
    rng = random.Random(seed)
    total = sum(len(paraphrases) for _, paraphrases, _ in EVENTS)
    idents = _identifiers(rng, total)
    rng.shuffle(idents)
    docs: list[EvalDocument] = []
    owners: list[tuple[int, str]] = []
    for event, (_, paraphrases, _) in enumerate(EVENTS):
        for j, text in enumerate(paraphrases):
            ident = idents[len(docs)]
            docs.append(EvalDocument(f"ev{event}-{j}", f"Incident report {ident}. {text}"))
            owners.append((event, ident))
    return docs, owners


def identifier_set(*, seed: int = 0) -> EvalSet:
    """One query per note: its identifier plus the event's short name; one relevant note."""
    docs, owners = _notes(seed)
    queries = {
        f"q-{d.id}": f"what happened in {ident}, the {EVENTS[event][0]} incident?"
        for d, (event, ident) in zip(docs, owners, strict=True)
    }
    qrels = {f"q-{d.id}": {d.id: 1} for d in docs}
    random.Random(seed).shuffle(docs)
    return EvalSet(docs, queries, qrels)


def paraphrase_set(*, seed: int = 0) -> EvalSet:
    """One query per event in new words; all of the event's notes are relevant."""
    docs, owners = _notes(seed)
    queries = {f"q-ev{e}": fresh for e, (_, _, fresh) in enumerate(EVENTS)}
    qrels: dict[str, dict[str, int]] = {q: {} for q in queries}
    for d, (event, _) in zip(docs, owners, strict=True):
        qrels[f"q-ev{event}"][d.id] = 1
    random.Random(seed).shuffle(docs)
    return EvalSet(docs, queries, qrels)


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _prose(text: str) -> str:
    """Paragraphs of running text only: no headings, grammar rules or indented code."""
    kept = []
    for block in text.split("\n\n"):
        lines = block.splitlines()
        if not lines or lines[0].startswith(" ") or set(lines[-1]) <= set("*=-"):
            continue
        kept.append(" ".join(line.strip() for line in lines))
    return " ".join(kept)


def pydoc_set(*, max_words: int = 200) -> EvalSet:
    """Each reference topic minus one sentence; that sentence is the topic's query."""
    from pydoc_data.topics import topics

    docs: list[EvalDocument] = []
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for name in sorted(topics):
        sentences = _SENTENCE.split(_prose(topics[name]))
        # The query: the second sentence of 8-30 words (the first usually restates the title).
        candidates = [i for i, s in enumerate(sentences) if 8 <= len(s.split()) <= 30]
        if len(candidates) < 2:
            continue
        cut = candidates[1]
        rest = " ".join(sentences[:cut] + sentences[cut + 1 :]).split()[:max_words]
        docs.append(EvalDocument(name, " ".join(rest)))
        queries[f"q-{name}"] = sentences[cut]
        qrels[f"q-{name}"] = {name: 1}
    return EvalSet(docs, queries, qrels)
