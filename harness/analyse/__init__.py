"""Figures from a run folder alone (pandas): the reader (run_data), memory and its causes, upstream streams against
client streams and their attribution, cancellation, clients, per-connection resources, stalled clients, tracemalloc
growth; analysis gathers them into summary.json's figures. Never imports judge, report or gate."""
