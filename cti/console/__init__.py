"""The supervisor console: live queues, agents, KPIs and calls, pushed to open
consoles; monitoring (listen, whisper, barge); the unmasked caller, audited."""
