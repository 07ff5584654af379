"""One colour per target: upstreams grey, the others the palette in the run's order; none is a state's colour."""

from __future__ import annotations

from harness.report.palette import STATE_COLORS, TARGET_PALETTE, UPSTREAM_GREYS, target_colors


def test_colours_follow_the_order_and_role() -> None:
    colors = target_colors([("upstream", "upstream"), ("eager", "relay"), ("lazy", "relay"), ("eager", "relay")])
    assert colors == {"upstream": UPSTREAM_GREYS[0], "eager": TARGET_PALETTE[0], "lazy": TARGET_PALETTE[1]}
    assert not set(TARGET_PALETTE) & set(STATE_COLORS.values())
    many = target_colors((f"t{i}", "relay") for i in range(len(TARGET_PALETTE) + 1))
    assert many["t0"] == many[f"t{len(TARGET_PALETTE)}"]  # the palette wraps
