from __future__ import annotations

from pathlib import Path

from gantry.loop.calls import conversation_messages
from gantry.loop.loop import LoopResult
from gantry.loop.report import ReportWriter, plot, read_records, summary
from gantry.loop.stats import Success
from gantry.proto.common.v1 import chat_pb2


def _records(directory: Path) -> None:
    writer = ReportWriter(directory)
    writer.record(
        {
            "stage": "evaluate",
            "label": "untrained",
            "iteration": 0,
            "task": "t",
            "success_rate": 0.0,
            "successes": 0,
            "success_low": 0.0,
            "success_high": 0.2775,
            "mean_reward": 0.0,
            "episodes": 10,
            "errors": 0,
            "tokens_per_second": 5.0,
        }
    )
    for step in (1, 2, 3):
        writer.record(
            {
                "stage": "sft",
                "iteration": 0,
                "step": step,
                "loss": 3.0 / step,
                "tokens_per_second": 100.0,
            }
        )
    writer.record(
        {
            "stage": "rollouts",
            "iteration": 1,
            "task": "t",
            "success_rate": 0.25,
            "mean_reward": 0.25,
            "episodes": 8,
            "errors": 0,
            "tokens_per_second": 9.0,
        }
    )
    writer.record(
        {
            "stage": "grpo",
            "iteration": 1,
            "step": 1,
            "loss": 0.1,
            "tokens_per_second": 50.0,
            "reward_mean": 0.25,
            "logprob_mismatch": 1e-7,
        }
    )
    writer.record(
        {
            "stage": "evaluate",
            "label": "grpo-1",
            "iteration": 1,
            "task": "t",
            "success_rate": 0.3,
            "successes": 3,
            "success_low": 0.1078,
            "success_high": 0.6032,
            "mean_reward": 0.3,
            "episodes": 10,
            "errors": 0,
            "tokens_per_second": 7.0,
        }
    )
    writer.close()


def test_records_round_trip_with_timestamps(tmp_path: Path) -> None:
    _records(tmp_path)
    records = read_records(tmp_path)
    assert [r["stage"] for r in records][:2] == ["evaluate", "sft"]
    assert all("time_s" in r for r in records)
    assert records[1]["loss"] == 3.0


def test_plots_and_summary_cover_every_stage(tmp_path: Path) -> None:
    _records(tmp_path)
    records = read_records(tmp_path)
    written = {p.name for p in plot(tmp_path, records)}
    assert written == {"success.png", "reward.png", "loss_sft.png", "loss_grpo.png", "mismatch.png"}
    assert all((tmp_path / name).stat().st_size > 1000 for name in written)
    result = LoopResult(success={"untrained": 0.0, "grpo-1": 0.3})
    text = summary(tmp_path, records, result, "name: t\n").read_text()
    assert "| untrained | 0.0 % | — |" in text and "| grpo-1 | 30.0 % | — |" in text
    assert "loss 3.000 -> 1.000" in text
    assert "![success](success.png)" in text
    assert result.untrained == 0.0 and result.final == 0.3


def test_summary_gives_intervals_and_says_which_gains_are_beyond_noise(tmp_path: Path) -> None:
    counts = {"untrained": Success(2, 200), "sft": Success(40, 200), "grpo-1": Success(52, 200)}
    result = LoopResult(success={label: c.rate for label, c in counts.items()}, evaluations=counts)
    text = summary(tmp_path, [], result, "name: t\n").read_text()
    # 2/200: 0.3–3.6 %; 40/200: 15.0–26.1 %; 52/200: 20.4–32.5 % (Wilson, 95 %).
    assert "| untrained | 2/200 = 1.0 % | 0.3–3.6 % |  |" in text
    assert "| sft | 40/200 = 20.0 % | 15.0–26.1 % | +19.0 points, beyond noise |" in text
    assert "| grpo-1 | 52/200 = 26.0 % | 20.4–32.5 % | +6.0 points, within noise" in text
    assert "- SFT vs untrained: +19.0 points, beyond noise." in text
    assert "- GRPO (grpo-1) vs SFT: +6.0 points, within noise (intervals overlap)." in text
    assert "do not overlap" in text  # the test used is named


def test_demonstration_conversations_become_trainer_messages() -> None:
    conversation = chat_pb2.Conversation(
        messages=[
            chat_pb2.ChatMessage(
                role=chat_pb2.ROLE_SYSTEM, content=[chat_pb2.ContentPart(text="long instructions")]
            ),
            chat_pb2.ChatMessage(
                role=chat_pb2.ROLE_USER,
                content=[
                    chat_pb2.ContentPart(text="Feedback: ok"),
                    chat_pb2.ContentPart(text="grid"),
                ],
            ),
            chat_pb2.ChatMessage(
                role=chat_pb2.ROLE_ASSISTANT, content=[chat_pb2.ContentPart(text="stop")]
            ),
        ]
    )
    messages = conversation_messages(conversation, "short prompt")
    assert messages == [
        {"role": "system", "content": "short prompt"},
        {"role": "user", "content": "Feedback: ok\ngrid"},  # joined as rollout joins them
        {"role": "assistant", "content": "stop"},
    ]
    assert conversation_messages(conversation, "")[0]["content"] == "long instructions"
