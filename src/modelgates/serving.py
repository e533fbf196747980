"""The limits ``modelgates serve`` gives uvicorn, in one place (checked by the tests).

- ``timeout_keep_alive``: an idle keep-alive connection is closed after 5 s.
- ``h11_max_incomplete_event_size``: request line plus headers may be at most
  64 KiB before they are complete; a client that trickles more is cut off
  (the h11 protocol; httptools, the default with uvicorn[standard], caps headers
  itself).
- ``timeout_graceful_shutdown``: on SIGTERM, in-flight requests get 10 s.

Bodies are capped by the handlers (``MODELGATES_MAX_BODY_BYTES``), which stop
reading at the cap. A client that opens many connections and sends nothing,
or sends headers slowly, holds only a socket: uvicorn serves everyone else
from the same event loop. ``--limit-concurrency N`` bounds how many may be
open at once per worker.
"""

from __future__ import annotations

from typing import Final

TIMEOUT_KEEP_ALIVE: Final = 5
H11_MAX_INCOMPLETE_EVENT_SIZE: Final = 64 * 1024
TIMEOUT_GRACEFUL_SHUTDOWN: Final = 10
