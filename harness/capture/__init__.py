"""The server side, written into the run folder while a run goes: the sampler's ticks over the process sampler,
the connection counter and the stats poller; the tracemalloc probe, its client, its traced memory and snapshots;
the agent that samples on another host, and its client."""
