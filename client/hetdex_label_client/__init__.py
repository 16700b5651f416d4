"""Client for the HETDEX labelling platform's science API (/api/science/v1/)."""

from hetdex_label_client.client import (
    ApiError,
    AuthenticationFailed,
    BadRequest,
    Client,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
)

__all__ = [
    "ApiError",
    "AuthenticationFailed",
    "BadRequest",
    "Client",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "ServiceUnavailable",
]
__version__ = "0.1.0"
