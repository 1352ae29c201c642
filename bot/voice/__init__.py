"""Discord voice receive for discord.py 2.7: RTP, transport AEAD, DAVE, jitter, Opus decode.

discord.py sends voice but does not receive it, and the released receive add-ons predate DAVE, so
this package owns the receive path. The pipeline per UDP datagram is::

    rtp.parse_header -> transport.open -> rtp strip ext body / padding -> dave.decrypt
        -> jitter.JitterBuffer (per SSRC) -> decoder.OpusStream -> sink (the recorder)

`receiver.VoiceReceiver` is the glue; `discord_hook` attaches it to a live voice connection.
"""
