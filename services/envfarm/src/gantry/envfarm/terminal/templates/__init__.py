"""Procedural task templates: categories of shell tasks with difficulty knobs.

A template draws a task from a `random.Random` and a difficulty: instruction, ground
truth, setup script, initial-state and completion tests, and a reference solution. The
same (template, seed, difficulty) always gives the same task, so suites are reproducible
from seeds alone.
"""

from __future__ import annotations

from gantry.envfarm.terminal.templates.base import Draft, Template
from gantry.envfarm.terminal.templates.data import DATA_TEMPLATES
from gantry.envfarm.terminal.templates.files import FILE_TEMPLATES
from gantry.envfarm.terminal.templates.systems import SYSTEM_TEMPLATES
from gantry.envfarm.terminal.templates.text import TEXT_TEMPLATES

# category -> its templates (a suite cycles through them)
CATEGORIES: dict[str, tuple[Template, ...]] = {
    **FILE_TEMPLATES,
    **TEXT_TEMPLATES,
    **SYSTEM_TEMPLATES,
    **DATA_TEMPLATES,
}

__all__ = ["CATEGORIES", "Draft", "Template"]
