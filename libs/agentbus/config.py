"""The platform's declarative configuration: ``agentbus.yaml``.

Tenants, agents, LLM models, channel instances and scheduled jobs. Credentials are never written in the
file itself but referenced by environment variable (``{env: NAME}``, optionally with a ``default`` for
local demos). Any error stops start-up with a message that names the offending key.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from agentbus.authconfig import AuthConfig
from agentbus.channeltypes import CHANNEL_TYPES, ChannelBase, EnvRef
from agentbus.channeltypes.base import Strict
from agentbus.jobs import JOB_ID_PATTERN
from agentbus.schedules import ScheduleError, check_cron, parse_at, period, zone


class ConfigError(Exception):
    """A configuration problem; the message names the key."""


class Quotas(Strict):
    """Per-tenant limits: messages accepted per minute at ingress (all channels, all replicas), and LLM tokens
    (input + output) per UTC day in the reasoner. None: unlimited."""

    messages_per_minute: int | None = Field(default=None, ge=1)
    llm_tokens_per_day: int | None = Field(default=None, ge=1)
    budget_used_up_text: str = Field(
        default="This workspace has used up today's answering budget. Please try again tomorrow.",
        min_length=1, description="what the agent answers, without calling the model, once the day's tokens "
        "are used up")


PiiKind = Literal["email", "phone", "id_card", "bank_card"]
PII_KINDS: tuple[PiiKind, ...] = ("email", "phone", "id_card", "bank_card")


class Retention(Strict):
    """Days a tenant's rows are kept before their service deletes them: memory's turns, the reasoner's inference
    ledger (inferences and tool-loop steps), egress's deliveries. Absent: the platform's default
    (``AGENTBUS_RETENTION_<KIND>_DAYS``); 0: forever. A ledger is never pruned sooner than the processed-event
    horizon (``AGENTBUS_PRUNE_HORIZON_DAYS``), since it is what answers a redelivered event."""

    turns_days: int | None = Field(default=None, ge=0, le=36500)
    ledger_days: int | None = Field(default=None, ge=0, le=36500)
    deliveries_days: int | None = Field(default=None, ge=0, le=36500)


class Tenant(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    name: str | None = None
    quotas: Quotas = Quotas()
    retention: Retention = Retention()
    pii_masking: bool | tuple[PiiKind, ...] = Field(
        default=False, description="personal data replaced by placeholders before text reaches an external model "
        "or the embeddings server (and put back in the reply): true for every kind, or a list of kinds (email, "
        "phone, id_card, bank_card)")

    @property
    def masked_kinds(self) -> tuple[PiiKind, ...]:
        """The kinds of personal data masked for this tenant (none: masking is off)."""
        if self.pii_masking is True:
            return PII_KINDS
        if self.pii_masking is False:
            return ()
        return tuple(dict.fromkeys(self.pii_masking))


class MemorySettings(Strict):
    history_turns: int = Field(default=10, ge=0, le=200)
    history_ttl_days: float = Field(
        default=7.0, ge=0, le=36500, description="the short-term memory's time to live: turns older than this "
        "are not sent as history (they stay recallable as memories); 0: no limit")
    summary_after: int = Field(
        default=0, ge=0, le=200, description="once this many turns have fallen out of the history window "
        "(older than the newest history_turns), the reasoner folds them into the conversation's running summary, "
        "sent with every later message; until then they are sent beside the history. 0: no summary")
    recall_top_k: int = Field(default=3, ge=0, le=50)
    recall_min_score: float = Field(default=0.0, ge=-1.0, le=1.0)
    recall_scope: Literal["conversation", "user", "tenant"] = Field(
        default="user", description="whose memories are recalled: this conversation's; the asker's own across "
        "the tenant's channels and chats (in a group chat only what they said in group chats); or the whole "
        "tenant's, as shared knowledge")
    semantic: bool = True
    knowledge: bool = Field(default=True, description="recall searches the tenant's knowledge base too (documents "
                            "operators loaded for every user), whatever the recall scope")


class HttpFetchSettings(Strict):
    """The ``http_fetch`` tool of one agent: which hosts it may read, and how much."""

    allow_hosts: tuple[str, ...] = Field(default=(), description="host names or patterns (*.example.com); "
                                         "empty: any public host")
    max_bytes: int = Field(default=1_000_000, gt=0, le=20_000_000)
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class ToolSettings(Strict):
    http_fetch: HttpFetchSettings = HttpFetchSettings()


class Agent(Strict):
    id: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
    system_prompt: str = "You are a helpful assistant."
    model: str = "default"
    fallback_models: tuple[str, ...] = ()
    temperature: float | None = None
    max_tokens: int | None = None
    reply_format: Literal["text", "markdown"] = "text"
    memory: MemorySettings = MemorySettings()
    tools: tuple[str, ...] = Field(default=(), description="tools the agent may call: built-in names, "
                                   "<mcp server>__<tool> (or <mcp server>__* for all of a server's), plugin names")
    tool_settings: ToolSettings = ToolSettings()
    max_tool_steps: int = Field(default=8, ge=1, le=64, description="model calls per answer, at most")
    apology: str = Field(default="Sorry, I could not finish answering that. Please try again later.",
                         min_length=1, description="said in the chat when the answer cannot be completed")


class Model(Strict):
    """An OpenAI-compatible chat-completions endpoint, referenced by name from agents."""

    name: str
    base_url: str
    model: str
    api_key: EnvRef | None = None
    timeout_s: float = 60.0
    headers: dict[str, str] = Field(default_factory=dict)
    max_context_tokens: int | None = Field(default=None, gt=0, description="the prompt is kept within this "
                                           "budget: the oldest history goes first, never the system prompt "
                                           "or the question")
    tools: bool = Field(default=True, description="whether the endpoint accepts OpenAI `tools`")
    vision: bool = Field(default=False, description="accepts image_url parts: images sent to the bot are given "
                         "to it (other models are told an attachment came)")


class McpServer(Strict):
    """An MCP server whose tools agents may call (named ``<name>__<tool>`` to the model)."""

    name: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,30}$")
    transport: Literal["http", "stdio"]
    url: str | None = Field(default=None, description="streamable HTTP endpoint (transport http)")
    headers: dict[str, str] = Field(default_factory=dict)
    command: str | None = Field(default=None, description="program to start (transport stdio)")
    args: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    side_effects: bool = Field(default=True, description="whether its tools may change anything (MCP tools "
                                "annotated readOnlyHint are treated as free of side effects)")

    @model_validator(mode="after")
    def _transport(self) -> McpServer:
        if self.transport == "http" and not self.url:
            raise ValueError("transport http needs url")
        if self.transport == "stdio" and not self.command:
            raise ValueError("transport stdio needs command")
        return self


class HttpTool(Strict):
    """A tool that calls one of the company's own HTTP APIs (a ticket system, an order service): the model's
    arguments are POSTed as JSON, the answer's text is what the model reads. Side-effecting calls carry an
    ``Idempotency-Key`` header that is the same when a step is retried, so the API can apply it once."""

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://")
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    headers: dict[str, EnvRef | str] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    side_effects: bool = True
    timeout_s: float = Field(default=15.0, gt=0, le=300)
    max_bytes: int = Field(default=200_000, gt=0, le=10_000_000)


class Job(Strict):
    """A scheduled job of agentbus.yaml; its schedule is checked as the scheduler will read it, so a job
    that passes start-up can always be scheduled (``agentbus.schedules``)."""

    id: str = Field(pattern=JOB_ID_PATTERN)
    cron: str | None = None
    every_s: float | None = Field(default=None, gt=0)
    at: str | None = None
    timezone: str = "UTC"
    channel: str
    chat: str = Field(description="the conversation (chat id) to post into")
    chat_type: Literal["direct", "group"] = "group"
    agent: str | None = None
    prompt: str
    reply_route: dict[str, Any] = Field(default_factory=dict)

    @field_validator("at", mode="before")
    @classmethod
    def _yaml_datetime(cls, value: Any) -> Any:
        """An unquoted YAML timestamp is read as a datetime: take it as the ISO-8601 text it was."""
        from datetime import date

        return value.isoformat() if isinstance(value, date) else value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        _checked(zone, value)
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            _checked(check_cron, value)
        return value

    @field_validator("at")
    @classmethod
    def _at(cls, value: str | None) -> str | None:
        if value is not None:
            _checked(lambda v: parse_at(v, "UTC"), value)  # the instant's validity does not depend on the zone
        return value

    @field_validator("every_s")
    @classmethod
    def _every(cls, value: float | None) -> float | None:
        if value is not None:
            _checked(lambda v: period(str(v)), value)
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> Job:
        given = [k for k in ("cron", "every_s", "at") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("exactly one of cron, every_s, at must be set")
        return self


def _checked(check: Callable[[Any], object], value: Any) -> None:
    """Run a check of ``agentbus.schedules``; its message becomes the key's (without pydantic's prefix)."""
    try:
        check(value)
    except ScheduleError as err:
        raise PydanticCustomError("schedule", "{reason}", {"reason": str(err)}) from None


class PlatformConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tenants: tuple[Tenant, ...]
    agents: tuple[Agent, ...]
    models: tuple[Model, ...] = ()
    channels: tuple[Any, ...] = ()
    jobs: tuple[Job, ...] = ()
    mcp_servers: tuple[McpServer, ...] = ()
    http_tools: tuple[HttpTool, ...] = ()
    auth: AuthConfig = AuthConfig()

    # indexes by id, built once the configuration is validated (``_index``)
    _channels: dict[str, ChannelBase] = PrivateAttr(default_factory=dict)
    _agents: dict[str, Agent] = PrivateAttr(default_factory=dict)
    _models: dict[str, Model] = PrivateAttr(default_factory=dict)

    def channel(self, channel_id: str) -> ChannelBase | None:
        return self._channels.get(channel_id)

    def agent(self, agent_id: str) -> Agent | None:
        return self._agents.get(agent_id)

    def model_named(self, name: str) -> Model | None:
        return self._models.get(name)

    def tenant(self, tenant_id: str) -> Tenant | None:
        return next((t for t in self.tenants if t.id == tenant_id), None)

    def masked_kinds(self, tenant_id: str) -> tuple[PiiKind, ...]:
        """What ``tenants[].pii_masking`` masks for the tenant (an unknown tenant: nothing)."""
        t = self.tenant(tenant_id)
        return t.masked_kinds if t is not None else ()

    @model_validator(mode="after")
    def _index(self) -> PlatformConfig:
        self._channels = {c.id: c for c in self.channels}
        self._agents = {a.id: a for a in self.agents}
        self._models = {m.name: m for m in self.models}
        return self


def _channel_adapter() -> TypeAdapter[Any]:
    if len(CHANNEL_TYPES) == 1:
        return TypeAdapter(CHANNEL_TYPES[0])
    union: Any = Annotated[_union(CHANNEL_TYPES), Field(discriminator="type")]
    return TypeAdapter(union)


def _union(types: list[type[ChannelBase]]) -> Any:
    from typing import Union

    return Union[tuple(types)]  # noqa: UP007 - built at run time from the registry


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _fail(source: str, err: ValidationError, prefix: str = "") -> ConfigError:
    lines = [f"{source}: invalid configuration"]
    for e in err.errors():
        key = _loc(tuple(p for p in e["loc"] if p not in CHANNEL_TAGS))
        lines.append(f"  {prefix}{key}: {e['msg']}")
    return ConfigError("\n".join(lines))


CHANNEL_TAGS: set[str] = set()


def parse_config(raw: dict[str, Any], source: str = "agentbus.yaml") -> PlatformConfig:
    """Validate a loaded YAML document, resolve cross references and environment credentials."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping")
    CHANNEL_TAGS.clear()
    CHANNEL_TAGS.update(t.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]  # a Literal
                        for t in CHANNEL_TYPES)
    channels_raw = raw.get("channels") or []
    if not isinstance(channels_raw, list):
        raise ConfigError(f"{source}: channels: must be a list")
    adapter = _channel_adapter()
    channels = []
    for i, ch in enumerate(channels_raw):
        try:
            channels.append(adapter.validate_python(ch))
        except ValidationError as err:
            raise _fail(source, err, prefix=f"channels[{i}].") from None
    try:
        cfg = PlatformConfig.model_validate({**raw, "channels": channels})
    except ValidationError as err:
        raise _fail(source, err) from None
    _check_references(cfg, source)
    return cfg


def _check_references(cfg: PlatformConfig, source: str) -> None:
    problems: list[str] = []

    def dupes(kind: str, ids: list[str]) -> None:
        seen: set[str] = set()
        for i, x in enumerate(ids):
            if x in seen:
                problems.append(f"{kind}[{i}].id: duplicate id {x!r}")
            seen.add(x)

    dupes("tenants", [t.id for t in cfg.tenants])
    dupes("agents", [a.id for a in cfg.agents])
    dupes("channels", [c.id for c in cfg.channels])
    dupes("jobs", [j.id for j in cfg.jobs])
    dupes("mcp_servers", [s.name for s in cfg.mcp_servers])
    dupes("http_tools", [t.name for t in cfg.http_tools])
    servers = {s.name for s in cfg.mcp_servers}
    for i, a in enumerate(cfg.agents):
        for j, tool in enumerate(a.tools):
            server, sep, _ = tool.partition("__")
            if sep and server not in servers:
                problems.append(f"agents[{i}].tools[{j}]: unknown MCP server {server!r} (declare it under "
                                "mcp_servers)")
    tenants = {t.id for t in cfg.tenants}
    agents = {a.id for a in cfg.agents}
    models = {m.name for m in cfg.models} | {"default", "echo"}
    for i, a in enumerate(cfg.agents):
        for j, m in enumerate((a.model, *a.fallback_models)):
            if m not in models:
                key = "model" if j == 0 else f"fallback_models[{j - 1}]"
                problems.append(f"agents[{i}].{key}: unknown model {m!r} (declare it under models)")
    for i, c in enumerate(cfg.channels):
        if c.tenant not in tenants:
            problems.append(f"channels[{i}].tenant: unknown tenant {c.tenant!r}")
        if c.agent not in agents:
            problems.append(f"channels[{i}].agent: unknown agent {c.agent!r}")
        for key, ref in _env_refs(c, f"channels[{i}]"):
            if ref.resolve() is None:
                problems.append(f"{key}: environment variable {ref.env} is not set")
    for i, model in enumerate(cfg.models):
        if model.api_key is not None and model.api_key.resolve() is None:
            problems.append(f"models[{i}].api_key: environment variable {model.api_key.env} is not set")
    api_agents: dict[tuple[str, str], int] = {}
    for i, c in enumerate(cfg.channels):
        if c.type == "api" and api_agents.setdefault((c.tenant, c.agent), i) != i:
            problems.append(f"channels[{i}].agent: tenant {c.tenant!r} already has an api channel for agent "
                            f"{c.agent!r} (the request's model names the agent, so it must be unique)")
    problems += _auth_problems(cfg.auth, tenants)
    channel_ids = {c.id for c in cfg.channels}
    for i, job in enumerate(cfg.jobs):
        if job.channel not in channel_ids:
            problems.append(f"jobs[{i}].channel: unknown channel {job.channel!r}")
        elif (target := cfg.channel(job.channel)) is not None and target.type == "api":
            problems.append(f"jobs[{i}].channel: {job.channel!r} is an api channel, which answers requests and "
                            "cannot push a job's message")
        if job.agent is not None and job.agent not in agents:
            problems.append(f"jobs[{i}].agent: unknown agent {job.agent!r}")
    if problems:
        raise ConfigError(f"{source}: invalid configuration\n" + "\n".join(f"  {p}" for p in problems))


def _auth_problems(auth: AuthConfig, tenants: set[str]) -> list[str]:
    problems = []
    for name, provider in auth.providers.items():
        if provider.app_secret.resolve() is None:
            problems.append(f"auth.providers.{name}.app_secret: environment variable {provider.app_secret.env} "
                            "is not set")
    for i, user in enumerate(auth.users):
        if user.provider not in auth.providers:
            problems.append(f"auth.users[{i}].provider: {user.provider!r} is not under auth.providers")
        if user.tenant is not None and user.tenant not in tenants:
            problems.append(f"auth.users[{i}].tenant: unknown tenant {user.tenant!r}")
    return problems


def _env_refs(value: Any, key: str) -> list[tuple[str, EnvRef]]:
    """Every credential reference inside a (nested) config value, with the key naming it."""
    if isinstance(value, EnvRef):
        return [(key, value)]
    if isinstance(value, BaseModel):
        return [r for name, v in value for r in _env_refs(v, f"{key}.{name}")]
    if isinstance(value, (list, tuple)):
        return [r for i, v in enumerate(value) for r in _env_refs(v, f"{key}[{i}]")]
    if isinstance(value, dict):
        return [r for k, v in value.items() for r in _env_refs(v, f"{key}.{k}")]
    return []


def load_document(path: Path, loader: Callable[[str], Any] = yaml.safe_load) -> dict[str, Any]:
    """The file as a document (not validated yet): what ``parse_config`` reads, and what the first
    ``config.changed`` carries."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found (set AGENTBUS_CONFIG_FILE)") from None
    try:
        raw = loader(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return raw


def load_config(path: Path, loader: Callable[[str], Any] = yaml.safe_load) -> PlatformConfig:
    return parse_config(load_document(path, loader), source=str(path))
