"""DELETE /user-tokens: sign out everywhere — every token family of the bearer token's user is revoked."""

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from mcp_gateway import bearer
from mcp_gateway.challenges import unauthorized
from mcp_gateway.responses import Reply
from oauth_server.families import USER_SIGN_OUT, revoke_families_of


def _as_django(reply: Reply) -> HttpResponse:
    response = HttpResponse(reply.body, status=reply.status, content_type="application/json")
    for name, value in reply.headers:
        response[name.decode()] = value.decode()
    return response


@csrf_exempt  # authenticated by the bearer token alone; no cookie is read
async def user_tokens(request: HttpRequest) -> HttpResponse:
    """204 once every family of the user is revoked; 401 with the /mcp challenge without a valid token."""
    if request.method != "DELETE":
        return HttpResponse(status=405, headers={"Allow": "DELETE"})
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return _as_django(unauthorized(error=None))
    identity = await bearer.validate(token.strip()) if token.strip() else None
    if identity is None:
        return _as_django(unauthorized())
    await sync_to_async(revoke_families_of)(USER_SIGN_OUT, user_id=identity.user_id)
    return HttpResponse(status=204)
