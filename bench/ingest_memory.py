"""Peak memory of `homelabpi ingest` over a batch with a 60-minute recording (target: < 600 MB).

Runs the real CLI in a subprocess with HOMELABPI_DATA_DIR in a temporary directory and no
gateway, so the whole pipeline runs in that one process: probe, store, transcribe (PyAV decode
streamed into Whisper in 120 s windows), index (embeddings) and status.
Peak memory is the child's max RSS from the kernel's resource accounting (os.wait4, the
per-child form of getrusage(RUSAGE_CHILDREN), so helper processes never mix in). Linux counts
the parent's resident memory at spawn time into a child's max RSS, so this process stays small:
the input files are made in a separate process, and its own RSS is printed as the floor.

The batch is the five LibriVox utterances (wav), two espeak-ng clips (Ogg Opus, the bot's
format) and one long recording of LibriVox and espeak-ng speech (WAV: the largest input for its
length). One short clip, with and without embeddings, shows what the loaded models cost; the
difference to the batch is what grows with the recording. Wall time and the real-time factor
(audio seconds per wall second) are printed beside it.

    .venv/bin/python bench/ingest_memory.py [--quick] [--minutes N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from corpus import librivox, long_recording, machine, ogg_opus, speak, table, write_wav

TARGET_MB = 600.0
CLI = Path(sys.executable).with_name("homelabpi")
# The pipeline must run in the measured process, on a local store in a temporary directory.
NOT_INHERITED = {"HOMELABPI_GATEWAY", "HOMELABPI_S3_ENDPOINT", "HOMELABPI_DATA_DIR"}
SPOKEN = ["the nas backup finished at two and the pool is healthy",
          "remind me to update the firewall rules for the new vlan"]


def make_inputs(root: Path, minutes: float) -> None:
    """The espeak-ng clips and the long recording (run in a separate process)."""
    for i, text in enumerate(SPOKEN):
        (root / f"clip-{i}.ogg").write_bytes(ogg_opus(speak(text)))
    write_wav(root / "long.wav", long_recording(minutes * 60))


def ingest(files: list[Path], data_dir: Path, **env: str) -> dict:
    """Run `homelabpi ingest --json` on `files`; its peak RSS, time and clip statuses."""
    environ = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    environ.update(HOMELABPI_DATA_DIR=str(data_dir), **env)
    cmd = [str(CLI), "ingest", *map(str, files), "--guild", "b", "--channel", "c",
           "--speaker", "s", "--json"]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=environ, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    try:
        clips = json.loads(stdout)["clips"]
        statuses, audio = [c["status"] for c in clips], sum(c["seconds"] for c in clips)
    except (ValueError, KeyError):
        statuses, audio = [f"exit {proc.returncode}: {stderr.strip()[-300:]}"], 0.0
    return {"mb": usage.ru_maxrss / 1024, "seconds": time.perf_counter() - t0,
            "statuses": statuses, "audio": audio}


def summary(statuses: list[str]) -> str:
    return ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 5-minute long recording")
    ap.add_argument("--minutes", type=float, help="length of the long recording (default 60)")
    args = ap.parse_args()
    minutes = args.minutes or (5 if args.quick else 60)
    print(f"machine: {machine()}")

    with tempfile.TemporaryDirectory(prefix="homelabpi-bench-") as tmp:
        root = Path(tmp)
        maker = multiprocessing.get_context("spawn").Process(target=make_inputs,
                                                             args=(root, minutes))
        maker.start()
        maker.join()
        if maker.exitcode != 0:
            raise SystemExit(f"could not make the input files (exit {maker.exitcode})")
        short = [path for path, _ in librivox()]
        files = [*short, *sorted(root.glob("clip-*.ogg")), root / "long.wav"]
        off = {"HOMELABPI_EMBEDDINGS": "false"}
        floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        batch = ingest(files, root / "batch")
        one = ingest(short[:1], root / "one")
        one_off = ingest(short[:1], root / "one-off", **off)

    def row(what: str, run: dict, target: str = "(context)") -> tuple[str, str, str]:
        return (what, f"{run['mb']:.0f} MB in {run['seconds']:.0f} s "
                f"({summary(run['statuses'])})", target)

    table(f"ingest peak memory (max RSS of the CLI process); long recording {minutes:g} min", [
        row(f"batch: {len(files)} files incl. the long one", batch, f"< {TARGET_MB:.0f} MB"),
        ("  real-time factor of the batch (audio s / wall s)",
         f"{batch['audio'] / batch['seconds']:.1f}", "(context)"),
        row("one short clip", one),
        row("  same, HOMELABPI_EMBEDDINGS=false", one_off),
        ("floor: this process's max RSS at spawn", f"{floor:.0f} MB", ""),
    ])
    print(f"\n{'meets' if batch['mb'] < TARGET_MB else 'MISSES'} the memory target")


if __name__ == "__main__":
    main()
