"""Starting what a run loads: child processes with deadlines (process), the bundled stack and its flags (stack),
the user's own targets (targets_spec, launched), and the watchdog that outlives the harness (supervisor)."""
