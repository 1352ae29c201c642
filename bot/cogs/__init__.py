"""The bot's slash commands, grouped in discord.py cogs (recording, memory)."""
