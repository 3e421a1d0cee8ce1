"""Live events: publishing after commit, fan-out on channels, the WebSocket stream and scheduled alerts."""
