"""The engine's face: live captions and streaming speech over websockets and HTTP on one port.

Layers, outside in: `app` (asyncio listener, routing, auth, capacity, shutdown) with `connection`
(websocket glue over the `websockets` sans-I/O protocol) and `http`; the sans-I/O wire protocols
`protocol` (native, PROTOCOL.md), `realtime` (OpenAI-style) and `deepgram`, all on `wire`; one
`session` per connection (ring buffer, worker steps, `speech`, `outbox` back-pressure); the shared
models and worker pools in `engine`. Clients: `client` (Python, asyncio) and the page in `static/`.
"""
