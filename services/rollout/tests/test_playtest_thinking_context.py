"""MeepleLM parsing and Wasserstein evaluation, heavy-thinking answers, context fitting."""

from __future__ import annotations

import pytest

from gantry.proto.rollout.v1 import rollout_pb2
from gantry.rollout.context import fit_history
from gantry.rollout.episodes import extract_action
from gantry.rollout.generator import TransformersGenerator
from gantry.rollout.playtest import PERSONAS, parse_review, rating_distribution, wasserstein
from gantry.rollout.thinking import final_answer


def test_wasserstein_matches_hand_computed_values() -> None:
    point_3 = [0.0] * 10
    point_3[2] = 1.0
    point_7 = [0.0] * 10
    point_7[6] = 1.0
    assert wasserstein(point_3, point_7) == pytest.approx(4.0)  # all mass moves 4 steps
    assert wasserstein(point_3, point_3) == 0.0
    half = [0.0] * 10
    half[2] = half[6] = 0.5
    assert wasserstein(point_3, half) == pytest.approx(2.0)
    assert wasserstein([2, 0, 0, 0, 0, 0, 0, 0, 0, 0], [1] + [0] * 9) == 0.0  # unnormalised is fine
    with pytest.raises(ValueError, match="10 entries"):
        wasserstein([1.0], [1.0])


def test_rating_distribution() -> None:
    assert rating_distribution([7, 7, 8, 11]) == [0, 0, 0, 0, 0, 0, 2 / 3, 1 / 3, 0, 0]


def test_parse_review_takes_the_last_valid_json() -> None:
    text = (
        'Mechanics first... {"draft": true}\n'
        '{"persona": "Thrill Seeker", "mechanics": "m", "dynamics": "d", "aesthetics": "a", '
        '"rating": 8, "review": "Tense finish."}'
    )
    review = parse_review(text, "fallback")
    assert (review.rating, review.review, review.persona) == (8, "Tense finish.", "Thrill Seeker")
    assert review.reasoning.dynamics == "d"
    bad = parse_review('{"rating": 42, "review": "x"}', "System Purist")
    assert bad.rating == 0 and bad.persona == "System Purist"


def test_five_personas() -> None:
    assert {p.name for p in PERSONAS.values()} == {
        "System Purist",
        "Efficiency Essentialist",
        "Narrative Architect",
        "Social Lubricator",
        "Thrill Seeker",
    }


@pytest.mark.parametrize(
    ("text", "answer"),
    [("so 5.\nAnswer: 5", "5"), ("reasoning\nfinal line", "final line"), ("Answer:", "")],
)
def test_final_answer(text: str, answer: str) -> None:
    assert final_answer(text) == answer


def test_extract_action() -> None:
    assert extract_action("I should go up.\nAction: ('move', 'up')\n") == "('move', 'up')"
    assert extract_action("\n  ('move', 2)\nbecause") == "('move', 2)"


async def test_history_window_and_truncation(generator: TransformersGenerator) -> None:
    history = []
    for i in range(6):
        history += [
            {"role": "user", "content": f"obs {i}"},
            {"role": "assistant", "content": f"act {i}"},
        ]
    history.append({"role": "user", "content": "obs now"})
    full = await fit_history(generator, "task", list(history), 0, 0, 16)
    windowed = await fit_history(generator, "task", list(history), 2, 0, 16)
    assert len(windowed) < len(full)
    text = generator.tokenizer.decode(windowed)
    assert "obs now" in text and "obs 5" in text and "obs 3" not in text
    # A budget that leaves room for only the latest turns drops the oldest ones.
    tight = generator.context_length - len(windowed) - 1
    truncated = await fit_history(generator, "task", list(history), 0, 0, tight)
    assert len(truncated) <= generator.context_length - tight
    assert "obs now" in generator.tokenizer.decode(truncated)


async def test_summarize_and_reset_replaces_history(generator: TransformersGenerator) -> None:
    history = []
    for i in range(8):
        history += [
            {"role": "user", "content": f"observation {i} " * 20},
            {"role": "assistant", "content": "move"},
        ]
    history.append({"role": "user", "content": "latest observation"})
    full = await fit_history(generator, "task", list(history), 0, 0, 16)
    budget = generator.context_length - len(full) // 2
    strategy = rollout_pb2.CONTEXT_STRATEGY_SUMMARIZE_AND_RESET
    ids = await fit_history(generator, "task", history, 0, strategy, budget)
    assert len(history) == 1 and history[0]["content"].startswith(
        "Summary of the earlier interaction"
    )
    assert "latest observation" in history[0]["content"]
    assert len(ids) <= generator.context_length - budget


def test_playtest_eval_loads_games_and_scores_distances() -> None:
    from typing import Any

    from gantry.rollout.playtest_eval import evaluate, load_games

    games = load_games(
        [
            '{"title": "A", "rulebook": "Roll dice, move.", "ratings": [7, 8, 8]}',
            "",
            '{"title": "B", "rulebook": "Draft cards.", "distribution": [0,0,0,0,1,0,0,0,0,0]}',
        ]
    )
    assert [g.title for g in games] == ["A", "B"]
    assert games[0].reference[7] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="line 1"):
        load_games(['{"rulebook": "x", "distribution": [1, 2]}'])

    class Stub:
        def Playtest(self, request: Any, timeout: float) -> Any:
            shares = [0.0] * 10
            shares[7] = 1.0  # every review rates 8
            return rollout_pb2.PlaytestResponse(rating_distribution=shares)

    results = evaluate(Stub(), games, persona=rollout_pb2.PERSONA_THRILL_SEEKER, reviews=2)  # type: ignore[arg-type]
    assert results[0][1] == pytest.approx(1 / 3)  # a third of the mass moves one step
    assert results[1][1] == pytest.approx(3.0)
