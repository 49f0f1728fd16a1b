"""The live service: the router driven by asyncio, with its observers and interfaces."""
