"""CPU cost of the token decoders, per read and per token, on the fake upstream's own streams.

Each API's stream (200-token bodies of the fake upstream's framing, 64-byte tokens) is cut into reads the way the
read loop sees them: one token per read (a slow stream: every read wakes the decoder for one event), 4 KiB and
64 KiB reads (a fast stream). Every decoder is fed the same reads; the table prints microseconds per read and
nanoseconds per token, side by side, best of ``--rounds``.

    python benchmarks/decoder_cost.py --rounds 5
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from harness.load.ai_decoders import AnthropicTokens, OpenAIChatTokens, OpenAIResponsesTokens
from harness.load.decoders import SseTokens
from targets.upstream.ai import AiRequest
from targets.upstream.chat import ChatEncoder
from targets.upstream.messages import MessagesEncoder
from targets.upstream.producer import token_text
from targets.upstream.responses import ResponsesEncoder
from targets.upstream.settings import StreamSettings

TOKENS, TOKEN_BYTES = 200, 64


class _Done:
    body_complete = True


def _events(encoder: Any) -> list[bytes]:
    return [
        encoder.start(),
        *(encoder.token(i, token_text(i, TOKEN_BYTES)) for i in range(TOKENS)),
        encoder.end(TOKENS),
    ]


def _streams() -> dict[str, tuple[list[bytes], Callable[[], Any]]]:
    request = AiRequest("m", True, ("hi",), None)
    settings = StreamSettings(TOKENS, TOKEN_BYTES, 0, 0, 0)
    chat = _events(ChatEncoder(request, "c", capped=False))
    return {
        "openai-chat": (chat, OpenAIChatTokens),
        "openai-responses": (_events(ResponsesEncoder(request, "r", settings, capped=False)), OpenAIResponsesTokens),
        "anthropic": (_events(MessagesEncoder(request, "m", capped=False)), AnthropicTokens),
        "sse (generic, on chat)": (chat, lambda: SseTokens(_Done())),  # type: ignore[arg-type]
    }


def _reads(events: list[bytes], size: int) -> list[bytes]:
    if size == 0:
        return events
    body = b"".join(events)
    return [body[i : i + size] for i in range(0, len(body), size)]


def _best(reads: list[bytes], make: Callable[[], Any], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        decoders = [make() for _ in range(50)]
        started = time.perf_counter()
        for decoder in decoders:
            feed = decoder.feed
            for data in reads:
                feed(data)
        best = min(best, (time.perf_counter() - started) / len(decoders))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sizes = {"one event per read": 0, "4 KiB reads": 4096, "64 KiB reads": 65536}
    print(f"{'API':<24}" + "".join(f"{name:>28}" for name in sizes))
    for api, (events, make) in _streams().items():
        cells = []
        for size in sizes.values():
            reads = _reads(events, size)
            seconds = _best(reads, make, args.rounds)
            cells.append(f"{seconds / len(reads) * 1e6:8.2f} us/read {seconds / TOKENS * 1e9:6.0f} ns/tok")
        print(f"{api:<24}" + "".join(f"{cell:>28}" for cell in cells))


if __name__ == "__main__":
    main()
