"""Screen-pop: the ringing caller on the agent's desktop, with the caller's
earlier calls and work orders, the number masked by role."""
