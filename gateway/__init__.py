"""The aiohttp REST and WebSocket gateway."""
