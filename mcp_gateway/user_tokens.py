"""DELETE /user-tokens: sign out everywhere — every token family of the bearer token's user is revoked."""

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from mcp_gateway.bearer import access_tokens
from mcp_gateway.bearer_header import credentials
from mcp_gateway.challenges import unauthorized
from oauth_server.families import USER_SIGN_OUT, revoke_families_of


@csrf_exempt  # authenticated by the bearer token alone; no cookie is read
async def user_tokens(request: HttpRequest) -> HttpResponse:
    """204 once every family of the user is revoked; 401 with the /mcp challenge without a valid token."""
    if request.method != "DELETE":
        return HttpResponse(status=405, headers={"Allow": "DELETE"})
    presented = credentials(request.headers.get("Authorization"))
    if not presented.bearer:
        return unauthorized(error=None).django_response()
    identity = await access_tokens.verify(presented.token) if presented.token else None
    if identity is None:
        return unauthorized().django_response()
    await sync_to_async(revoke_families_of)(USER_SIGN_OUT, user_id=identity.user_id)
    return HttpResponse(status=204)
