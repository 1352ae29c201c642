"""Attach the receive pipeline to a live discord.py 2.7 voice connection.

Hook points (all in discord.py 2.7.1; the bot extra pins discord.py>=2.7,<2.8 because of them):

* `VoiceClient.create_connection_state()` (voice_client.py) builds the `VoiceConnectionState`;
  we override it to pass `hook=`. `VoiceConnectionState.hook` is handed to every
  `DiscordVoiceWebSocket.from_connection_state(..., hook=self.hook)` (voice_state.py
  `_connect_websocket`), so it survives reconnects, and `DiscordVoiceWebSocket.received_message`
  (gateway.py) awaits `self._hook(self, msg)` for *every* JSON message after its own handling.
  We use op 2 READY (our own SSRC, to ignore), op 4 SESSION_DESCRIPTION (`state.mode` and
  `state.secret_key` are already set when the hook runs), op 5 SPEAKING (`user_id`, `ssrc`) and
  op 13 CLIENT_DISCONNECT (`user_id`).
* `VoiceConnectionState.add_socket_listener(cb)` / `remove_socket_listener(cb)` register with the
  connection's `SocketReader` thread, which calls `cb(datagram)` for every UDP datagram
  (`socket.recv(2048)`); registering also un-pauses the reader.
* `VoiceConnectionState.dave_session` is the current `davey.DaveSession` (replaced on
  re-initialisation, so it is read per frame) or None.

Connect with `channel.connect(cls=ReceivingVoiceClient, self_deaf=False)`: a deafened client is
sent no audio. discord.py negotiates `aead_xchacha20_poly1305_rtpsize` (the only current mode in
`VoiceClient.supported_modes`); the receiver also handles AES-GCM should that change.

Losing the connection: discord.py 2.7 (`VoiceConnectionState._poll_voice_ws`) resumes after 4015,
follows moves after 4014, gives up on 4014/4022 when we were removed and on 4021 (rate limited),
and re-connects by itself after any other code (4006, 4009, ...) while `reconnect=True`. When it
gives up it calls `cleanup()`. We remember the close code that ended the last poll
(`last_close_code`, read by wrapping that websocket's `poll_event`) and report a cleanup we did
not ask for to `on_lost(code)`, so the bot can decide to join again (see `bot.session`).
DAVE: the IDENTIFY that discord.py sends carries `max_dave_protocol_version`, which is non-zero
only when `davey` imports (`discord.voice_state.has_dave`); without it Discord closes with 4017.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import discord
from discord.errors import ConnectionClosed
from discord.voice_state import VoiceConnectionState

from bot.voice.receiver import VoiceReceiver
from bot.voice.transport import TransportCipher

log = logging.getLogger(__name__)

OP_READY = 2
OP_SESSION_DESCRIPTION = 4
OP_SPEAKING = 5
OP_CLIENT_DISCONNECT = 13


class ReceiveHook:
    """Routes voice-websocket messages and UDP datagrams of one connection into a receiver."""

    def __init__(self, state: Any, receiver: VoiceReceiver,
                 tickers: tuple[Callable[[float], None], ...] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.receiver = receiver
        self.tickers = (receiver.tick, *tickers)
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sync_state()

    def sync_state(self) -> None:
        """Pick up what the connection already knows (attach after connect, or after op 4)."""
        key = getattr(self.state, "secret_key", None)
        mode = getattr(self.state, "mode", None)
        if isinstance(key, list | bytes | bytearray) and isinstance(mode, str):
            try:
                self.receiver.set_cipher(TransportCipher(mode, key))
            except ValueError as exc:
                log.error("cannot receive voice: %s", exc)
                self.receiver.set_cipher(None)
        ssrc = getattr(self.state, "ssrc", None)
        if isinstance(ssrc, int):
            self.receiver.ignore_ssrcs.add(ssrc)

    async def on_ws_message(self, msg: dict[str, Any]) -> None:
        """The voice websocket hook body (never raises: it runs inside discord.py's poll loop)."""
        try:
            op, data = msg.get("op"), msg.get("d") or {}
            if op in (OP_READY, OP_SESSION_DESCRIPTION):
                self.sync_state()
            elif op == OP_SPEAKING and "ssrc" in data and "user_id" in data:
                self.receiver.map_ssrc(int(data["ssrc"]), int(data["user_id"]), self.clock())
            elif op == OP_CLIENT_DISCONNECT and "user_id" in data:
                self.receiver.forget_user(int(data["user_id"]))
        except Exception:  # noqa: BLE001
            log.exception("voice websocket hook failed on %r", msg.get("op"))

    def on_datagram(self, data: bytes) -> None:
        """SocketReader callback (its thread)."""
        self.receiver.feed(data, self.clock())

    def start(self, interval: float = 0.1) -> None:
        """Listen on the socket and start the ticker thread (jitter release, clip cutting)."""
        self.state.add_socket_listener(self.on_datagram)
        self._stop.clear()
        self._thread = threading.Thread(target=self._tick_loop, args=(interval,),
                                        name="voice-receive-ticker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening, stop ticking, and drain open streams into the sink."""
        try:
            self.state.remove_socket_listener(self.on_datagram)
        except Exception:  # noqa: BLE001 - connection may already be torn down
            log.debug("remove_socket_listener failed", exc_info=True)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.receiver.close()

    def _tick_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            now = self.clock()
            for tick in self.tickers:
                try:
                    tick(now)
                except Exception:  # noqa: BLE001
                    log.exception("voice receive ticker failed")


class ReceivingVoiceClient(discord.VoiceClient):
    """A discord.py 2.7 VoiceClient whose voice websocket messages reach a ReceiveHook."""

    def __init__(self, client: discord.Client, channel: discord.abc.Connectable) -> None:
        self.receive_hook: ReceiveHook | None = None
        self.on_lost: Callable[[int | None], None] | None = None
        self.last_close_code: int | None = None
        self._leaving = False
        super().__init__(client, channel)

    def create_connection_state(self) -> VoiceConnectionState:
        return VoiceConnectionState(self, hook=self._ws_hook)

    async def _ws_hook(self, ws: Any, msg: dict[str, Any]) -> None:
        self._watch_close(ws)
        if msg.get("op") == OP_SESSION_DESCRIPTION:
            self.last_close_code = None  # (re)connected: an older close no longer explains a loss
        hook = getattr(self, "receive_hook", None)
        if hook is not None:
            await hook.on_ws_message(msg)

    def _watch_close(self, ws: Any) -> None:
        """Wrap this websocket's `poll_event` once, to learn the close code that ends it."""
        if getattr(ws, "_homelabpi_watched", False):
            return
        poll = ws.poll_event

        async def poll_event() -> None:
            try:
                await poll()
            except ConnectionClosed as exc:
                self.last_close_code = exc.code  # -1: no code (network error)
                raise
            except TimeoutError:
                self.last_close_code = -1  # no message for 30 s: treated like a network error
                raise

        ws.poll_event = poll_event
        ws._homelabpi_watched = True

    def cleanup(self) -> None:
        """discord.py's end of a connection; tell `on_lost` when we did not ask for it."""
        super().cleanup()
        callback, self.on_lost = self.on_lost, None
        if callback is not None and not self._leaving:
            try:
                callback(self.last_close_code)
            except Exception:  # noqa: BLE001 - cleanup runs inside discord.py's teardown
                log.exception("voice on_lost callback failed")

    def start_receiving(self, receiver: VoiceReceiver,
                        tickers: tuple[Callable[[float], None], ...] = ()) -> ReceiveHook:
        """Feed this connection's audio into `receiver` (call after connect)."""
        if self.receive_hook is not None:
            self.receive_hook.stop()
        self.receive_hook = ReceiveHook(self._connection, receiver, tickers)
        self.receive_hook.start()
        return self.receive_hook

    def stop_receiving(self) -> None:
        if self.receive_hook is not None:
            self.receive_hook.stop()
            self.receive_hook = None

    async def disconnect(self, *, force: bool = False) -> None:
        self._leaving = True  # our own leave: not a loss to recover from
        self.stop_receiving()
        await super().disconnect(force=force)
