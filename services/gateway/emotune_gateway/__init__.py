"""emotune gateway: REST under /v1, WebSocket and SSE subscriptions, the web page, Spotify."""
