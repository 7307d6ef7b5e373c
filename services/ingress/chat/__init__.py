"""The OpenAI-compatible chat API (``POST /v1/chat/completions``): a channel whose way back is the request."""
