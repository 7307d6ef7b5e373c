"""The chat API's wire format: OpenAI's chat-completions request, response, stream chunks and error shape.

What of a request is used: the memory of the conversation is the platform's, not the caller's, so only the
last message, which must be the user's, is the question; earlier messages (the caller's copy of the history,
its system prompt) are accepted as OpenAI clients send them and otherwise ignored: the agent's own system
prompt and the conversation's remembered turns are what the model sees. Sampling parameters OpenAI defines
are accepted and ignored (the agent's settings decide); a parameter OpenAI does not define is a 400, as
OpenAI answers it.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.responses import JSONResponse


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")  # tool_calls, refusal, audio... of earlier assistant turns
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, min_length=1, max_length=200)
    n: int | None = Field(default=None, ge=1, le=1)
    frequency_penalty: Any = None
    presence_penalty: Any = None
    logit_bias: Any = None
    logprobs: Any = None
    top_logprobs: Any = None
    max_tokens: Any = None
    max_completion_tokens: Any = None
    seed: Any = None
    stop: Any = None
    temperature: Any = None
    top_p: Any = None
    metadata: Any = None
    store: Any = None
    service_tier: Any = None
    parallel_tool_calls: Any = None
    response_format: Any = None
    modalities: Any = None
    reasoning_effort: Any = None
    prediction: Any = None
    audio: Any = None
    tools: Any = None
    tool_choice: Any = None
    functions: Any = None
    function_call: Any = None
    web_search_options: Any = None

    @field_validator("user")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and (not value.isprintable() or not value.strip()):
            raise ValueError("user must be printable text")
        return value


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, code: str | None = None,
                 status: int = 400) -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status


def question_of(req: ChatRequest) -> str:
    """The last message's text: the question (it must be the user's, and text)."""
    last = req.messages[-1]
    where = f"messages[{len(req.messages) - 1}]"
    if last.role != "user":
        raise BadRequest(f"the last message must be the user's question (its role is {last.role!r})",
                         f"{where}.role", "invalid_role")
    content = last.content
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            try:
                texts.append(TextPart.model_validate(part).text)
            except ValidationError:
                raise BadRequest("only text content parts are accepted", f"{where}.content[{i}]",
                                 "invalid_content") from None
        content = "\n".join(texts)
    if not content or not content.strip():
        raise BadRequest("the last message has no text", f"{where}.content", "invalid_content")
    if "\x00" in content:
        raise BadRequest("the message contains a NUL character", f"{where}.content", "invalid_content")
    return content


def parse_request(raw: Any) -> ChatRequest:
    if not isinstance(raw, dict):
        raise BadRequest("the request body must be a JSON object", None, "invalid_json")
    try:
        return ChatRequest.model_validate(raw)
    except ValidationError as err:
        e = err.errors()[0]
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            raise BadRequest(f"Unrecognized request argument supplied: {loc}", loc, "unknown_parameter") from None
        if loc == "messages" and e["type"] in ("too_short", "missing"):
            raise BadRequest("messages must hold at least one message", "messages", "invalid_messages") from None
        raise BadRequest(f"{loc}: {e['msg']}", loc, "invalid_value") from None


def openai_error(status: int, message: str, type_: str, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> JSONResponse:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": code}},
                        status_code=status, headers=headers)


def completion(cid: str, model: str, text: str, created: int | None = None) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion", "created": created or int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": None, "system_fingerprint": None}


def chunk(cid: str, model: str, created: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
