"""Agents at their desks: sign-in, pause, resume, after-call work, and each
agent's state pushed to its desktops as it changes. The ACD (``acd/``) is
the core; this feature is its HTTP face."""
