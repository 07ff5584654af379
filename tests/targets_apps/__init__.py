"""Third-party-style servers the integration tests launch as targets: written the way users write theirs."""
