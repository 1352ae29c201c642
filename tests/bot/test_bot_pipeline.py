"""End to end: real Opus in real RTP sealed with real AEAD -> receiver -> recorder -> clip files.

Nothing is mocked except the DAVE session's decrypt (FakeDave): libopus encodes and decodes,
PyNaCl / AES-GCM seal and open, PyAV writes and reads the Ogg Opus clips.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from bot_helpers import FakeDave, decode_clip, dominant_hz

from bot.recorder import Member, Recorder
from bot.spool import Spool
from bot.voice import rtp
from bot.voice.receiver import VoiceReceiver
from bot.voice.simclient import SAMPLE_RATE, SimSpeaker, tone
from bot.voice.transport import AES_GCM, XCHACHA, TransportCipher

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
KEY = bytes(range(100, 132))
ALICE, BOB, ROBOT, ME = 111, 222, 999, 42
MEMBERS = {ALICE: Member(ALICE, "Alice"), BOB: Member(BOB, "Bob"),
           ROBOT: Member(ROBOT, "MusicBot", bot=True), ME: Member(ME, "HomeLabPi", bot=True)}


def _parse_iso(s: str) -> float:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


class Scenario:
    """Two speakers, a bot, a stranger SSRC, with loss, reordering, wrap, corruption and DAVE."""

    def __init__(self, tmp: Path, mode: str) -> None:
        self.rng = random.Random(1234)
        cipher = TransportCipher(mode, KEY)
        self.dave = FakeDave({BOB})
        self.spool = Spool(tmp / "spool")
        self.rec = Recorder(self.spool, guild_id="g-1", channel_id=777, channel_name="lab",
                            self_user_id=ME, member_info=MEMBERS.get, session_id="s-test")
        self.rx = VoiceReceiver(self.rec, cipher=cipher, dave_session=lambda: self.dave,
                                wants=self.rec.wants)
        alice = SimSpeaker(0x1111, cipher, rng=self.rng, seq0=65490, extension={1: b"\x85"})
        bob = SimSpeaker(0x2222, cipher, rng=self.rng, padding=5,
                         extension={1: b"\x90", 5: b"\x00\x01"},
                         # transition: the first 20 frames go out before DAVE is on
                         frame_transform=lambda f, n: f if n < 20 else self.dave.encrypt(BOB, f, n))
        robot = SimSpeaker(0x9999, cipher, rng=self.rng)
        stranger = SimSpeaker(0x7777, cipher, rng=self.rng)

        a1 = alice.talk(tone(440, 2.0), T0)
        a2 = alice.talk(tone(440, 1.0), T0 + 4.0)
        b1 = bob.talk(tone(660, 2.0), T0 + 0.5)
        r1 = robot.talk(tone(880, 1.0), T0 + 1.0)
        s1 = stranger.talk(tone(300, 0.1), T0 + 1.2)
        self.sent_frames = {ALICE: len(a1) + len(a2), BOB: len(b1)}
        self.alice_seq_wraps = a1[0].seq > a1[-1].seq

        dropped = {id(a1[30]), id(a1[31]), id(b1[50])}
        corrupt = a1[70]
        events: list[tuple[float, bytes]] = []
        for p in a1 + a2 + b1 + r1 + s1:
            if id(p) in dropped:
                continue
            data = p.data
            if p is corrupt:
                bad = bytearray(data)
                bad[rtp.parse_header(data).aad_len + 5] ^= 0x40
                data = bytes(bad)
            events.append((p.send_time + 0.040 + self.rng.uniform(0, 0.015), data))
        events.append((T0 + 0.3, bytes([0x81, 200, 0, 6]) + bytes(24)))  # RTCP sender report
        events.append((T0 + 0.31, b"\x80\x78junk"))  # truncated datagram
        events.sort(key=lambda e: e[0])
        for i in range(10, len(events) - 1, 17):  # network reordering
            events[i], events[i + 1] = events[i + 1], events[i]
        self.events = events
        self.bob_first = [i for i, (_, d) in enumerate(events)
                          if len(d) >= 12 and d[8:12] == (0x2222).to_bytes(4, "big")]

    def run(self) -> None:
        self.rx.map_ssrc(0x1111, ALICE)
        self.rx.map_ssrc(0x9999, ROBOT)
        now = T0
        for i, (arrival, data) in enumerate(self.events):
            now = max(now, arrival)
            self.rx.feed(data, arrival)
            if i == self.bob_first[9]:  # Bob's SPEAKING event loses the race by 10 packets
                self.held_before_map = self.rx.snapshot()["held_now"]
                self.rx.map_ssrc(0x2222, BOB, now)
            self.rx.tick(now)
            self.rec.tick(now)
        for t in np.arange(now, now + 5, 0.1):
            self.rx.tick(float(t))
            self.rec.tick(float(t))
        self.rx.close()
        self.rec.close()


@pytest.fixture(params=[XCHACHA, AES_GCM])
def scenario(request, tmp_path: Path) -> Scenario:
    s = Scenario(tmp_path, request.param)
    s.run()
    return s


def test_counters_show_each_fault_cost_one_packet(scenario: Scenario) -> None:
    st = scenario.rx.snapshot()
    assert scenario.alice_seq_wraps
    assert st["decrypt_errors"] == 1  # the corrupt packet, and nothing else
    assert st["lost"] == 4  # 3 dropped in the network + the corrupt one
    assert st["concealed"] + st["fec_recovered"] == 4
    assert st["fec_recovered"] >= 1  # in-band FEC from the following packet was used
    assert st["frames"] == sum(scenario.sent_frames.values())  # every 20 ms slot accounted for
    assert st["rtcp"] == 1 and st["malformed"] == 1
    assert st["ignored"] == 50  # the bot's packets: never decrypted, never recorded
    assert scenario.held_before_map >= 10
    assert st["unknown_ssrc_dropped"] == 5  # the stranger's packets, after the hold timeout
    assert st["dave_errors"] == 0 and st["decode_errors"] == 0 and st["internal_errors"] == 0
    # Bob sent 80 DAVE frames, one was lost in the network; his first 20 passed through.
    assert scenario.dave.decrypt_calls == 79
    assert st["dave_passthrough"] == (150 - 3) + 20


def test_clips_decode_to_what_each_speaker_said(scenario: Scenario) -> None:
    clips = scenario.spool.pending()
    by_speaker: dict[str, list] = {}
    for e in clips:
        by_speaker.setdefault(e.metadata["speaker"], []).append(e)
    assert sorted(by_speaker) == ["Alice", "Bob"]  # no bot, no stranger
    alice = sorted(by_speaker["Alice"], key=lambda e: e.metadata["started-at"])
    (bob,) = by_speaker["Bob"]
    assert len(alice) == 2  # cut by the 2 s silence

    for entry, hz, seconds in ((alice[0], 440, 2.0), (alice[1], 440, 1.0), (bob, 660, 2.0)):
        audio, rate = decode_clip(entry.path)
        assert rate == SAMPLE_RATE
        assert abs(len(audio) / rate - seconds) < 0.1
        assert abs(dominant_hz(audio, rate) - hz) < 5
        # Loud all the way through: the concealed frames did not leave holes.
        frames = audio[: len(audio) // 960 * 960].reshape(-1, 960)
        rms = np.sqrt((frames[2:-2] ** 2).mean(axis=1))
        assert rms.min() > 0.05

    md = bob.metadata
    assert md["guild"] == "g-1" and md["session"] == "s-test" and md["source"] == "discord"
    assert md["channel"] == "lab" and md["channel-id"] == "777" and md["speaker-id"] == str(BOB)
    assert bob.key.startswith("audio/g-1/s-test/") and bob.key.endswith(".ogg")


def test_clip_start_times_line_up_within_20ms(scenario: Scenario) -> None:
    starts = {}
    for e in scenario.spool.pending():
        starts.setdefault(e.metadata["speaker"], []).append(_parse_iso(e.metadata["started-at"]))
    a1, a2 = sorted(starts["Alice"])
    (b1,) = starts["Bob"]
    assert abs((b1 - a1) - 0.5) < 0.020
    assert abs((a2 - a1) - 4.0) < 0.020
    assert 0 <= a1 - T0 < 0.060  # absolute: first arrival = send time + network latency


def test_unmapped_ssrc_is_released_when_speaking_arrives(tmp_path: Path) -> None:
    cipher = TransportCipher(XCHACHA, KEY)
    spool = Spool(tmp_path)
    rec = Recorder(spool, guild_id="g", channel_id=1, channel_name="c", self_user_id=ME,
                   member_info=MEMBERS.get, session_id="s-1")
    rx = VoiceReceiver(rec, cipher=cipher, wants=rec.wants, hold_timeout=2.0)
    sp = SimSpeaker(0x55, cipher, rng=random.Random(3))
    pkts = sp.talk(tone(500, 1.0), T0)
    for p in pkts[:30]:
        rx.feed(p.data, p.send_time)
    rx.tick(T0 + 0.6)
    assert rx.snapshot()["held_now"] == 30 and rx.snapshot()["frames"] == 0
    rx.map_ssrc(0x55, ALICE)
    for p in pkts[30:]:
        rx.feed(p.data, p.send_time)
    rx.close()
    rec.close()
    st = rx.snapshot()
    assert st["held_now"] == 0 and st["unknown_ssrc_dropped"] == 0 and st["frames"] == 50
    (clip,) = spool.pending()
    assert abs(_parse_iso(clip.metadata["started-at"]) - T0) < 0.001


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_speech_survives_the_pipeline(tmp_path: Path) -> None:
    wav = tmp_path / "say.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "the backup job on the raspberry pi failed"],
                   check=True, capture_output=True)
    with __import__("av").open(str(wav)) as c:
        import av

        res = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        speech = np.concatenate([f.to_ndarray().reshape(-1) for fr in c.decode(audio=0)
                                 for f in res.resample(fr)])
    cipher = TransportCipher(XCHACHA, KEY)
    spool = Spool(tmp_path / "spool")
    rec = Recorder(spool, guild_id="g", channel_id=1, channel_name="c", self_user_id=ME,
                   member_info=MEMBERS.get, session_id="s-1", silence_cut=1.5)
    rx = VoiceReceiver(rec, cipher=cipher, wants=rec.wants)
    rx.map_ssrc(0x66, ALICE)
    sp = SimSpeaker(0x66, cipher, rng=random.Random(4))
    for p in sp.talk(speech, T0):
        rx.feed(p.data, p.send_time + 0.03)
    rx.close()
    rec.close()
    (clip,) = spool.pending()
    got, _ = decode_clip(clip.path)
    sent = speech.astype(np.float32) / 32768

    def envelope(x: np.ndarray) -> np.ndarray:
        n = len(x) // 480
        return np.sqrt((x[: n * 480].reshape(n, 480) ** 2).mean(axis=1))

    # The clip starts at the first voiced 20 ms frame: align by the best envelope lag.
    es, eg = envelope(sent), envelope(got)
    best = max(
        float(np.corrcoef(es[lag:lag + len(eg)][: len(eg)], eg[: len(es) - lag])[0, 1])
        for lag in range(0, 10)
    )
    assert best > 0.9
