"""The event listener of ``make run``'s supervisord: every service's output, line by line with its name in
front, and a loud message when supervisord gives up on a service.

supervisord writes a service's output to its own log without saying whose it is; as an event listener
(PROCESS_LOG events) this process prints each line as ``12:00:01 capture     | ...``, as honcho did. A
service that exits too soon after starting, too many times in a row, goes FATAL and is not started again
(the back-off is supervisord's own: startsecs, startretries); on PROCESS_STATE_FATAL this says so in a
banner that names it, since supervisord's own line about it is easy to miss among the services' logs.

The protocol (http://supervisord.org/events.html): "READY" on stdout, a header line on stdin, a payload of
``len`` characters (characters: supervisord counts the payload before encoding it), "RESULT 2\\nOK". The
lines go to stderr, which supervisord passes to its own stdout.
"""

from __future__ import annotations

import argparse
import sys
import time

COLOURS = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")
LONGEST_PARTIAL = 8192  # a partial line longer than this is printed without waiting for its end


def parse_headers(line: str) -> dict[str, str]:
    """``key:value key:value`` as a dict."""
    return dict(token.split(":", 1) for token in line.split())


class Printer:
    """Prefixes the services' lines with their names, each in a colour of its own when ``colour``."""

    def __init__(self, width: int, colour: bool, control: str) -> None:
        self.width = width
        self.colour = colour
        self.control = control
        self.partial: dict[str, str] = {}
        self.colours: dict[str, str] = {}

    def paint(self, name: str, text: str) -> str:
        if not self.colour:
            return text
        code = self.colours.setdefault(name, COLOURS[len(self.colours) % len(COLOURS)])
        return f"\033[{code}m{text}\033[0m"

    def log(self, name: str, data: str) -> None:
        """Print the complete lines of ``data`` (output of ``name``); keep its unfinished last line for later."""
        *lines, rest = (self.partial.pop(name, "") + data).split("\n")
        if len(rest) > LONGEST_PARTIAL:
            lines, rest = [*lines, rest], ""
        if rest:
            self.partial[name] = rest
        prefix = self.paint(name, f"{time.strftime('%H:%M:%S')} {name:<{self.width}} |")
        for line in lines:
            sys.stderr.write(f"{prefix} {line.rstrip(chr(13))}\n")
        sys.stderr.flush()

    def fatal(self, name: str) -> None:
        """supervisord gave up on ``name``: say so in a banner that cannot be missed."""
        bar = "!" * 100
        text = (
            f"{bar}\n!!! emotune: {name} KEEPS CRASHING and is no longer restarted: it exited too soon after "
            f"starting, too many times in a row.\n!!! The other services go on. Its output is above; once fixed, "
            f"start it again with\n!!!     {self.control} start {name}\n!!! or stop everything with Ctrl-C.\n{bar}"
        )
        sys.stderr.write((f"\033[1;31m{text}\033[0m" if self.colour else text) + "\n")
        sys.stderr.flush()


def handle(printer: Printer, event: str, payload: str) -> None:
    if event.startswith("PROCESS_LOG"):
        header, _, data = payload.partition("\n")
        printer.log(parse_headers(header)["processname"], data)
    elif event == "PROCESS_STATE_FATAL":
        headers = parse_headers(payload)
        group, name = headers["groupname"], headers["processname"]
        printer.fatal(name if group == name else f"{group}:{name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=12, help="width of the names column")
    parser.add_argument("--colour", action="store_true", help="a colour for each service")
    parser.add_argument("--control", default="supervisorctl", help="the supervisorctl command of this run")
    args = parser.parse_args()
    printer = Printer(args.width, args.colour, args.control)
    sys.stdin.reconfigure(encoding="utf-8", newline="")  # len counts characters, untranslated
    while True:
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            return 0  # supervisord has gone
        headers = parse_headers(line)
        handle(printer, headers["eventname"], sys.stdin.read(int(headers["len"])))
        sys.stdout.write("RESULT 2\nOK")
        sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
