from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gantry.loop.cli import DEMO_CONFIGS, demo, demo_config
from gantry.loop.config import ConfigError, load_config, parse_config
from gantry.loop.loop import precision

MINIMAL = {"tasks": [{"env_id": "visgym/maze_2d"}]}


def test_minimal_config_takes_documented_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config.services.all_local
    assert config.policy.base_model == "tiny"
    assert config.policy.precision == "fp8-jet"
    assert config.tasks[0].difficulty == "easy"
    assert config.tasks[0].max_turns == 0


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({}, "tasks"),
        ({"tasks": []}, "tasks"),
        ({**MINIMAL, "sft": {"steps": 0}}, "sft.steps"),
        ({**MINIMAL, "policy": {"precision": "fp4"}}, "policy.precision"),
        ({**MINIMAL, "grpo": {"group_size": 1}}, "grpo.group_size"),
        ({**MINIMAL, "unknown_key": 1}, "unknown_key"),
        ({**MINIMAL, "services": {"trainer": "trainer:50052"}}, "services"),
        ({**MINIMAL, "grpo": {"mode": "later"}}, "grpo.mode"),
        ({**MINIMAL, "grpo": {"off_policy_correction": "is"}}, "grpo.off_policy_correction"),
        ({**MINIMAL, "grpo": {"importance_cap": 1.0}}, "grpo.importance_cap"),
        ({**MINIMAL, "grpo": {"max_staleness": 0}}, "grpo.max_staleness"),
        ({**MINIMAL, "policy": {"trainable_layers": -1}}, "policy.trainable_layers"),
    ],
)
def test_bad_configs_name_the_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_config(raw)


def test_async_mode_trains_one_task() -> None:
    two = [{"env_id": "visgym/maze_2d"}, {"env_id": "visgym/counting"}]
    with pytest.raises(ConfigError, match="one task"):
        parse_config({"tasks": two, "grpo": {"mode": "async"}})
    assert parse_config({"tasks": two}).grpo.mode == "sync"


def test_policy_options_reach_the_trainer_as_extras() -> None:
    plain = precision(parse_config(MINIMAL).policy)[1]
    assert dict(plain.items()) == {}
    policy = {"gradient_checkpointing": True, "trainable_layers": 8, "precision": "fp8-naive"}
    extra = precision(parse_config({**MINIMAL, "policy": policy}).policy)[1]
    assert dict(extra.items()) == {
        "precision_recipe": "fp8-naive",
        "gradient_checkpointing": True,
        "trainable_layers": 8.0,
    }


def test_evaluation_seeds_must_be_held_out() -> None:
    raw = {**MINIMAL, "sft": {"demonstrations": 500}, "eval": {"seed_offset": 100}}
    with pytest.raises(ConfigError, match="held-out"):
        parse_config(raw)


def test_load_config_reads_yaml_and_reports_syntax_errors(tmp_path: Path) -> None:
    good = tmp_path / "loop.yaml"
    good.write_text("tasks:\n  - {env_id: visgym/counting, difficulty: hard}\n")
    assert load_config(good).tasks[0].difficulty == "hard"
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        load_config(bad)


def test_packaged_demo_config_is_valid_and_local() -> None:
    config = demo_config()
    assert config.services.all_local
    assert config.policy.precision == "fp8-jet"
    assert config.grpo.iterations >= 1


# VisGym's own text-mode tasks: their text is the state (a grid, the matches), not the
# answer. counting's and referring_dot_pointing's text carries no scene to learn from.
HONEST_TEXT_TASKS = {
    "visgym/maze_2d",
    "visgym/sliding_block",
    "visgym/matchstick_equation",
    "visgym/patch_reassembly",
}


def test_demo_trains_on_a_task_whose_text_mode_is_honest() -> None:
    for model in DEMO_CONFIGS:
        assert {task.env_id for task in demo_config(model).tasks} <= HONEST_TEXT_TASKS


def test_smollm2_demo_config_scores_at_least_200_held_out_seeds() -> None:
    config = demo_config("smollm2-135m-instruct")
    assert config.policy.base_model == "smollm2-135m-instruct"
    assert config.services.all_local
    assert config.eval.episodes >= 200  # intervals narrow enough to tell stages apart
    assert config.tasks[0].max_turns == 2  # the task's length: the move, then stop
    assert demo_config().policy.base_model == "tiny"  # the default demo stays tiny


def test_demo_refuses_an_unknown_model_before_starting_anything() -> None:
    import typer

    app = typer.Typer()
    app.command()(demo)
    result = CliRunner().invoke(app, ["--model", "gpt-5"])
    assert result.exit_code == 2
    assert "--model" in result.output and "smollm2-135m-instruct" in result.output
