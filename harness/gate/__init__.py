"""The CI gate: the judge's checks of a run folder turned into an exit code, with the user's limits
(``[tool.harness.gate]``, flags), baselines and positive controls, written as console lines, JUnit and Markdown."""
