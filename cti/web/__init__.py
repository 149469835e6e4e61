"""The web pages the engine serves: the agent desktop (坐席工作台) and the
supervisor console (班长监控台). Plain HTML, CSS and JavaScript, no build step;
they talk to the engine's own HTTP API and WebSocket."""
