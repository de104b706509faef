"""`POST /api/v1/alerts/test`: send a test notification through chosen channels now."""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from alerts.delivery import channel_send_test
from alerts.models import Channel, Severity
from core.api_errors import OPERATOR_ERRORS_SCHEMA
from core.operator_api import HasModelPermission

from .common import COMMON_ERRORS, OperatorApi, bad_request, field_errors

MAX_CHANNELS = 20


class CanSendTests(HasModelPermission):
    permission = "alerts.send_test"
    message = "You need the permission to send test notifications (alerts.send_test)."


class AlertTestApi(OperatorApi):
    """Send a test through each chosen channel and report what each endpoint answered."""

    permission_classes = [IsAuthenticated, CanSendTests]

    @extend_schema_serializer(component_name="AlertTestRequest")
    class InputSerializer(serializers.Serializer[Any]):
        channels = serializers.ListField(
            child=serializers.CharField(max_length=100),
            min_length=1,
            max_length=MAX_CHANNELS,
            help_text="Channel ids or names.",
        )
        severity = serializers.ChoiceField(
            choices=[label.upper() for label in Severity.labels], default="INFO"
        )
        message = serializers.CharField(
            max_length=500,
            required=False,
            default="Test notification from Tradewatch: this channel works.",
        )

    @extend_schema(
        operation_id="alert_test",
        summary="Send a test notification through channels",
        request=InputSerializer,
        responses={
            200: inline_serializer(
                "AlertTestResults",
                {
                    "results": serializers.ListField(
                        child=inline_serializer(
                            "AlertTestResult",
                            {
                                "channel": serializers.IntegerField(),
                                "name": serializers.CharField(),
                                "ok": serializers.BooleanField(),
                                "status": serializers.IntegerField(allow_null=True),
                                "duration_ms": serializers.FloatField(),
                                "error": serializers.CharField(),
                            },
                        )
                    )
                },
            ),
            400: OPERATOR_ERRORS_SCHEMA,
            **COMMON_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        if not serializer.is_valid():
            return bad_request(field_errors(serializer.errors))
        refs: list[str] = serializer.validated_data["channels"]
        numeric = [int(ref) for ref in refs if ref.isdigit()]
        found = list(Channel.objects.filter(Q(pk__in=numeric) | Q(name__in=refs)))
        by_ref = {str(channel.pk): channel for channel in found} | {c.name: c for c in found}
        missing = [ref for ref in refs if ref not in by_ref]
        if missing:
            return bad_request(
                [
                    {
                        "index": refs.index(ref),
                        "field": "channels",
                        "message": f"No channel {ref!r}.",
                    }
                    for ref in missing
                ]
            )
        severity = Severity[serializer.validated_data["severity"]]
        results = []
        for channel in dict.fromkeys(by_ref[ref] for ref in refs):
            result = channel_send_test(
                channel=channel, severity=severity, message=serializer.validated_data["message"]
            )
            results.append(
                {
                    "channel": channel.pk,
                    "name": channel.name,
                    "ok": result.ok,
                    "status": result.status,
                    "duration_ms": round(result.duration_ms, 1),
                    "error": result.error or ("" if result.ok else result.answer[:200]),
                }
            )
        return Response({"results": results})
