"""The discord.py 2.7 hook points, exercised with discord.py's own code (no Discord servers).

A real `DiscordVoiceWebSocket.received_message` processes op 4/5/13 and calls our hook; a real
`SocketReader` thread reads a real UDP socket and calls our listener.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import discord
from bot_helpers import decode_clip, dominant_hz
from discord.gateway import DiscordVoiceWebSocket

from bot.recorder import Member, Recorder
from bot.spool import Spool
from bot.voice.discord_hook import ReceivingVoiceClient
from bot.voice.receiver import VoiceReceiver
from bot.voice.simclient import SimSpeaker, tone
from bot.voice.transport import XCHACHA, TransportCipher

KEY = bytes(range(7, 39))


class _FakeAiohttpWs:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_str(self, s: str) -> None:
        self.sent.append(s)


def test_pinned_discord_version() -> None:
    # The hook relies on private-ish discord.py 2.7 internals; a new minor must be re-checked.
    assert discord.version_info[:2] == (2, 7)
    from discord.voice_state import SocketReader, VoiceConnectionState

    assert hasattr(VoiceConnectionState, "add_socket_listener")
    assert hasattr(SocketReader, "register")


def test_websocket_and_udp_reach_the_recorder(tmp_path: Path) -> None:
    async def scenario() -> tuple[dict, list, list[str]]:
        client = discord.Client(intents=discord.Intents.none())
        vc = ReceivingVoiceClient(client, SimpleNamespace(id=5, guild=SimpleNamespace(id=1)))
        state = vc._connection
        assert state.hook is not None  # every future voice websocket gets our hook
        state._create_socket()  # what connect() does: new UDP socket, reader resumed
        rx_sock = state.socket
        rx_sock.bind(("127.0.0.1", 0))
        tx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        state.ssrc = 4242  # ours (READY)
        spool = Spool(tmp_path)
        rec = Recorder(spool, guild_id="g", channel_id=5, channel_name="c", self_user_id=1,
                       member_info=lambda uid: Member(uid, "Alice"), session_id="s-h")
        receiver = VoiceReceiver(rec, wants=rec.wants)
        hook = vc.start_receiving(receiver, tickers=(rec.tick,))
        assert vc.receive_hook is hook and hook.on_datagram in state._socket_reader._callbacks
        try:
            fake = _FakeAiohttpWs()
            ws = DiscordVoiceWebSocket(fake, loop=asyncio.get_running_loop(), hook=state.hook)
            ws._connection = state
            await ws.received_message({"op": 4, "d": {
                "mode": XCHACHA, "secret_key": list(KEY), "dave_protocol_version": 0}})
            assert receiver.cipher is not None and receiver.cipher.key == KEY
            await ws.received_message({"op": 5, "d": {
                "user_id": "555", "ssrc": 0x3333, "speaking": 1}})
            assert receiver.user_for(0x3333) == 555
            cipher = TransportCipher(XCHACHA, KEY)
            alice = SimSpeaker(0x3333, cipher, rng=random.Random(1))
            me = SimSpeaker(4242, cipher, rng=random.Random(2))
            addr = rx_sock.getsockname()
            pkts = alice.talk(tone(520, 1.0), time.time())
            for p in pkts:
                tx_sock.sendto(p.data, addr)
                await asyncio.sleep(0.02)  # real-time pacing, like a client
            for p in me.talk(tone(520, 0.2), time.time()):
                tx_sock.sendto(p.data, addr)
            for _ in range(500):  # liveness guard: wait for the reader thread to catch up
                if receiver.snapshot()["packets"] >= len(pkts) + 10:
                    break
                await asyncio.sleep(0.01)
            await ws.received_message({"op": 13, "d": {"user_id": "555"}})
            assert receiver.user_for(0x3333) is None
        finally:
            vc.stop_receiving()
            state._socket_reader.stop()
            rx_sock.close()
            tx_sock.close()
        rec.close()
        return receiver.snapshot(), spool.pending(), fake.sent

    stats, clips, sent = asyncio.run(scenario())
    # discord.py's own op 4 handling ran (it answers with a SPEAKING frame) before our hook.
    assert any('"op":5' in s.replace(" ", "") for s in sent)
    assert stats["packets"] == 60 and stats["ignored"] == 10 and stats["frames"] == 50
    assert stats["decrypt_errors"] == 0 and stats["internal_errors"] == 0
    (clip,) = clips
    assert clip.metadata["speaker-id"] == "555"
    audio, rate = decode_clip(clip.path)
    assert abs(dominant_hz(audio, rate) - 520) < 5
