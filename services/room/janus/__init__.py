"""The Janus backend: signaling over the WebSocket API and the three plugins it uses."""
