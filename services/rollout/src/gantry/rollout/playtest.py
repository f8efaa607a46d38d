"""MeepleLM-style virtual playtesting: a persona reads a rulebook and reviews the game.

The model reasons through Mechanics -> Dynamics -> Aesthetics (the MDA framework) in the
persona's voice and answers with JSON {persona, rating 1-10, review, mechanics, dynamics,
aesthetics}. Predicted rating distributions are compared with a community's by the
Wasserstein distance over the 1..10 scale (MeepleLM reports 0.22 vs 0.95 for a general
model on 207 games).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gantry.core.errors import InvalidArgument
from gantry.proto.common.v1 import chat_pb2
from gantry.proto.rollout.v1 import rollout_pb2
from gantry.rollout import prompts
from gantry.rollout.engine.types import SamplingParams
from gantry.rollout.generator import complete

if TYPE_CHECKING:
    from gantry.core.server import Runtime
    from gantry.rollout.model import ServedModel

MAX_REVIEWS = 64


@dataclass(frozen=True)
class PersonaCard:
    name: str
    motivation: str
    profile: str
    interaction_style: str
    keywords: tuple[str, ...]


# The five data-driven personas of MeepleLM, described in Gantry's own words.
PERSONAS: dict[int, PersonaCard] = {
    rollout_pb2.PERSONA_SYSTEM_PURIST: PersonaCard(
        "System Purist",
        "Wants elegant, tightly interlocking rules with no wasted parts.",
        "Reads the rulebook closely, values balance, clean edge cases and meaningful choices.",
        "Analytical and exacting; points at specific rules.",
        ("elegance", "balance", "depth", "rules clarity"),
    ),
    rollout_pb2.PERSONA_EFFICIENCY_ESSENTIALIST: PersonaCard(
        "Efficiency Essentialist",
        "Wants the most decisions per minute and little setup or downtime.",
        "Times setup and turns, dislikes fiddly upkeep and long explanations.",
        "Brisk and practical; weighs fun against time spent.",
        ("setup time", "downtime", "pacing", "teach time"),
    ),
    rollout_pb2.PERSONA_NARRATIVE_ARCHITECT: PersonaCard(
        "Narrative Architect",
        "Wants the rules to tell a story and the theme to shape every action.",
        "Cares whether mechanics express the setting and create memorable arcs.",
        "Evocative; describes the story a session would produce.",
        ("theme", "story", "immersion", "world"),
    ),
    rollout_pb2.PERSONA_SOCIAL_LUBRICATOR: PersonaCard(
        "Social Lubricator",
        "Wants the game to bring people together: talk, laughter, easy inclusion.",
        "Thinks about groups, newcomers, player interaction and table talk.",
        "Warm; imagines the table and how everyone feels.",
        ("interaction", "accessibility", "group fun", "player count"),
    ),
    rollout_pb2.PERSONA_THRILL_SEEKER: PersonaCard(
        "Thrill Seeker",
        "Wants tension, risk, big swings and dramatic moments.",
        "Looks for gambles, reversals and climactic endings; dislikes solved, quiet games.",
        "Excited and blunt; remembers highs and lows.",
        ("tension", "luck", "risk", "climax"),
    ),
}


def persona_card(request: rollout_pb2.PlaytestRequest) -> PersonaCard:
    if request.HasField("custom_persona"):
        p = request.custom_persona
        if not p.name:
            raise InvalidArgument.for_field("custom_persona.name", "is required")
        return PersonaCard(p.name, p.motivation, p.profile, p.interaction_style, tuple(p.keywords))
    if request.persona not in PERSONAS:
        raise InvalidArgument.for_field(
            "persona", "choose one of the five personas or send custom_persona"
        )
    return PERSONAS[request.persona]


def instructions(card: PersonaCard, title: str, rulebook: str) -> list[dict[str, str]]:
    system = (
        f"You are a board-game playtester: the {card.name}.\nMotivation: {card.motivation}\n"
        f"Profile: {card.profile}\nStyle: {card.interaction_style}\n"
        f"You care about: {', '.join(card.keywords)}."
    )
    user = (
        f"Rulebook of {title or 'the game'}:\n{rulebook}\n\n"
        "Think as this persona through Mechanics (the rules), then Dynamics (how play unfolds), "
        "then Aesthetics (how it feels). Then answer with one JSON object: "
        '{"persona": ..., "mechanics": ..., "dynamics": ..., "aesthetics": ..., '
        '"rating": <integer 1-10>, "review": ...}'
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_review(text: str, persona: str) -> rollout_pb2.PlaytestReview:
    """The last JSON object in `text` with an integer rating 1..10; rating 0 if none."""
    review = rollout_pb2.PlaytestReview(persona=persona, raw_json="")
    for match in reversed(list(re.finditer(r"\{[^{}]*\}", text, flags=re.DOTALL))):
        try:
            data: Any = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        rating = data.get("rating") if isinstance(data, dict) else None
        if isinstance(rating, (int, float)) and not isinstance(rating, bool) and 1 <= rating <= 10:
            review.rating = round(rating)
            review.review = str(data.get("review", ""))
            review.persona = str(data.get("persona") or persona)
            review.reasoning.mechanics = str(data.get("mechanics", ""))
            review.reasoning.dynamics = str(data.get("dynamics", ""))
            review.reasoning.aesthetics = str(data.get("aesthetics", ""))
            review.raw_json = match.group(0)
            return review
    review.review = text.strip()
    return review


def rating_distribution(ratings: Sequence[int]) -> list[float]:
    """Share of ratings on each of 1..10 (ratings outside are ignored)."""
    valid = [r for r in ratings if 1 <= r <= 10]
    if not valid:
        return [0.0] * 10
    return [valid.count(score) / len(valid) for score in range(1, 11)]


def wasserstein(p: Sequence[float], q: Sequence[float]) -> float:
    """Earth mover's distance between two distributions over the ratings 1..10."""
    if len(p) != 10 or len(q) != 10:
        raise ValueError("distributions must have 10 entries (ratings 1..10)")
    sp, sq = sum(p), sum(q)
    if sp <= 0 or sq <= 0:
        raise ValueError("distributions must have positive mass")
    distance, cdf_p, cdf_q = 0.0, 0.0, 0.0
    for a, b in zip(p, q, strict=True):
        cdf_p, cdf_q = cdf_p + a / sp, cdf_q + b / sq
        distance += abs(cdf_p - cdf_q)
    return distance


async def playtest(
    model: ServedModel,
    runtime: Runtime,
    request: rollout_pb2.PlaytestRequest,
    *,
    client: str = "",
) -> rollout_pb2.PlaytestResponse:
    generator = model.generator
    count = model.limits.playtest(request, MAX_REVIEWS)
    if not request.rulebook.strip():
        raise InvalidArgument.for_field("rulebook", "is required")
    card = persona_card(request)
    if not 1 <= count <= MAX_REVIEWS:
        raise InvalidArgument.for_field("num_reviews", f"must be between 1 and {MAX_REVIEWS}")
    params = prompts.sampling(request.sampling, "sampling", default_max=512)
    params = SamplingParams(**{**params.__dict__, "n": count})
    generator.check_capacity(client, count)
    messages = instructions(card, request.game_title, request.rulebook)
    ids = await runtime.run_blocking(
        lambda: prompts.apply_chat(generator.tokenizer, messages, field="rulebook")
    )
    if len(ids) + params.max_tokens >= generator.context_length:
        raise InvalidArgument.for_field(
            "rulebook", "too long for the context window with this max_tokens"
        )
    samples = await complete(generator, ids, params, client)
    reviews = [parse_review(s.text, card.name) for s in samples]
    rated = [r.rating for r in reviews if r.rating]
    produced = sum(len(s.token_ids) for s in samples)
    return rollout_pb2.PlaytestResponse(
        reviews=reviews,
        mean_rating=sum(rated) / len(rated) if rated else 0.0,
        rating_distribution=rating_distribution(rated),
        usage=chat_pb2.Usage(
            prompt_tokens=len(ids), completion_tokens=produced, total_tokens=len(ids) + produced
        ),
    )
