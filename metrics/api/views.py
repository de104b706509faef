"""HTTP endpoints for trading systems (authenticated by source API key)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from metrics.authentication import SourceAPIKeyAuthentication, SourcePrincipal
from metrics.permissions import IsSource


class WhoAmIView(APIView):
    """Tell a trading system which source its key belongs to (to check a key)."""

    authentication_classes = [SourceAPIKeyAuthentication]
    permission_classes = [IsSource]

    @extend_schema(
        responses=inline_serializer(
            "WhoAmI",
            {
                "source": serializers.CharField(),
                "kind": serializers.CharField(),
                "key_name": serializers.CharField(),
            },
        )
    )
    def get(self, request: Request) -> Response:
        principal = request.user
        assert isinstance(principal, SourcePrincipal)
        return Response(
            {
                "source": principal.source.name,
                "kind": principal.source.kind,
                "key_name": principal.api_key.name,
            }
        )
