"""The browser UI: pages served by the app, talking to the same API over a cookie session."""
