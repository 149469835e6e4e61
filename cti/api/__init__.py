"""The engine's HTTP API and WebSocket for agent desktops and the supervisor
console: accounts and roles, sessions, and the routes (``http.py``)."""
