"""The ``auth:`` section of agentbus.yaml: the identity providers people log in with (Feishu/Lark, DingTalk),
which person gets which role in which tenant, and how long a platform JWT lives.

A person is named by the provider's id (Feishu: user_id, open_id or union_id; DingTalk: unionId or openId)
or by e-mail address; a person not listed here cannot log in, whatever the provider says.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from agentbus.channeltypes.base import EnvRef, Strict

ProviderName = Literal["feishu", "dingtalk"]


class OAuthProvider(Strict):
    app_id: str = Field(min_length=1, max_length=200, description="the app's App ID (Feishu) or Client ID "
                        "(DingTalk AppKey)")
    app_secret: EnvRef
    authorize_url: str | None = Field(default=None, pattern=r"^https?://", description="default: the "
                                      "provider's authorization page")
    api_base_url: str | None = Field(default=None, pattern=r"^https?://", description="default: the provider's "
                                     "API (https://open.feishu.cn, https://api.dingtalk.com; Lark: "
                                     "https://open.larksuite.com)")
    scope: str | None = Field(default=None, max_length=500)


class AuthUser(Strict):
    provider: ProviderName
    user_id: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)
    tenant: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    role: Literal["owner", "admin", "operator", "viewer"]

    @model_validator(mode="after")
    def _one_name(self) -> AuthUser:
        if (self.user_id is None) == (self.email is None):
            raise ValueError("exactly one of user_id, email must be set")
        if (self.tenant is None) != (self.role == "owner"):
            raise ValueError("an owner has no tenant; every other role needs one")
        return self


class AuthConfig(Strict):
    providers: dict[ProviderName, OAuthProvider] = Field(default_factory=dict)
    users: tuple[AuthUser, ...] = ()
    jwt_ttl_s: int = Field(default=900, ge=60, le=43_200, description="lifetime of a platform JWT")
    public_url: str | None = Field(default=None, pattern=r"^https?://[^/?#]+$", description="ingress's public "
                                   "address (https://agentbus.example.com): the providers redirect back to "
                                   "<public_url>/api/v1/auth/callback/<provider>; default: the request's host")
