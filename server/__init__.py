"""Fathom's token-billed depth server (FastAPI + uvicorn); see server/__main__.py to start it."""
