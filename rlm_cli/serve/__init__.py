"""`rlm serve`: an OpenAI-compatible endpoint answering with the RLM loop when a request is big.

`chat` decides and computes each reply (straight to the root model for small requests, the RLM
loop over the request's own messages as `context` for large ones); `http` is the loopback HTTP
server around it (`/v1/chat/completions`, `/v1/models`, SSE streaming, the API key check).
"""

from rlm_cli.serve.chat import ChatError, ChatService, Reply
from rlm_cli.serve.http import ServeOptions, serve

__all__ = ["ChatError", "ChatService", "Reply", "ServeOptions", "serve"]
