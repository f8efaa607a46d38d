"""Endless-Terminals shell tasks (ENVIRONMENT_KIND_TERMINAL): a persistent bash in a
sandbox, procedural task templates with reference solutions, validation, seeded suites
and the GenerateTasks pipeline."""
