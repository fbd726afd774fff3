"""Record a command in a pseudo-terminal and render what the terminal showed as PNG images.

Used for the terminal screenshots in ``docs/img``: the command sees a real terminal (so its
progress bars draw as they do for a person), every byte it writes is kept with its time, and
a frame is the screen a VT100 emulator (``pyte``) holds after the bytes up to that time.

    pip install pyte
    python tools/terminal_screenshot.py --out docs/img/main_job --at 0.5 --at 1.0 -- \\
        repmatch fmnist --preset fmnist-tiny --out runs/fmnist-tiny

``--at F`` renders the screen at fraction F of the run's wall time (1.0: the end; repeatable);
``--record FILE`` keeps the timed byte stream (JSON Lines of ``[seconds, latin-1 text]``) and
``--replay FILE`` renders from one without rerunning the command.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

COLUMNS, LINES = 110, 34


def record(command: list[str]) -> list[tuple[float, bytes]]:
    """Run ``command`` on a pty of COLUMNS × LINES; return ``[(seconds, bytes), ...]``."""
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    env = {**os.environ, "COLUMNS": str(COLUMNS), "LINES": str(LINES), "TERM": "xterm"}
    # The pty's window size: tqdm sizes its bar from it.
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    t0, chunks = time.monotonic(), []
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        data = b""
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the pty
                data = b""
        if data:
            chunks.append((time.monotonic() - t0, data))
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        elif proc.poll() is not None:
            break
    os.close(master)
    return chunks


def render(chunks: list[tuple[float, bytes]], until: float, path: Path, title: str) -> None:
    """The screen after the bytes written up to ``until`` seconds, as a PNG at ``path``."""
    import pyte
    from PIL import Image, ImageDraw, ImageFont

    screen = pyte.Screen(COLUMNS, LINES)
    stream = pyte.ByteStream(screen)
    for t, data in chunks:
        if t > until:
            break
        stream.feed(data.replace(b"\n", b"\r\n"))  # the pty's onlcr, which pyte does not apply
    font_path = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
    font = ImageFont.truetype(font_path, 15) if Path(font_path).exists() else ImageFont.load_default()
    cw, ch = font.getbbox("M")[2], 19
    pad, bar_h = 12, 26
    image = Image.new("RGB", (COLUMNS * cw + 2 * pad, LINES * ch + 2 * pad + bar_h), (30, 30, 30))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, image.width, bar_h], fill=(60, 60, 60))
    draw.text((pad, 5), title, font=font, fill=(200, 200, 200))
    # Drop the empty rows at the bottom so the image is as tall as its text.
    rows = [line.rstrip() for line in screen.display]
    while rows and not rows[-1]:
        rows.pop()
    for y, line in enumerate(rows):
        draw.text((pad, bar_h + pad + y * ch), line, font=font, fill=(220, 220, 220))
    image = image.crop((0, 0, image.width, bar_h + 2 * pad + max(len(rows), 1) * ch))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output prefix: OUT-<percent>.png per --at")
    parser.add_argument("--at", type=float, action="append", default=None,
                        help="fraction of the wall time to render (repeatable; default 1.0)")
    parser.add_argument("--record", default=None, help="also save the timed byte stream here")
    parser.add_argument("--replay", default=None, help="render a saved byte stream instead of running")
    parser.add_argument("command", nargs="*")
    args = parser.parse_args()
    if args.replay:
        chunks = [(t, s.encode("latin-1")) for t, s in map(json.loads, Path(args.replay).read_text().splitlines())]
    else:
        if not args.command or shutil.which(args.command[0]) is None:
            parser.error("give the command to record after --")
        chunks = record(args.command)
        if args.record:
            Path(args.record).parent.mkdir(parents=True, exist_ok=True)
            Path(args.record).write_text("".join(json.dumps([t, d.decode("latin-1")]) + "\n" for t, d in chunks))
    total = chunks[-1][0] if chunks else 0.0
    title = "$ " + " ".join(args.command) if args.command else "terminal"
    for fraction in args.at or [1.0]:
        until = total * fraction
        render(chunks, until, Path(f"{args.out}-{round(fraction * 100):03d}.png"),
               f"[{until / 60:4.1f} min]  {title}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
