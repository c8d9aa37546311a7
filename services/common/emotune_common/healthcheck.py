"""Container health check: exit 0 when a service's /readyz answers 200.

python -m emotune_common.healthcheck [URL]     # default http://127.0.0.1:$EMOTUNE_METRICS_PORT/readyz
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    url = argv[0] if argv else f"http://127.0.0.1:{os.environ.get('EMOTUNE_METRICS_PORT', '9100')}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as e:
        print(f"{url}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
