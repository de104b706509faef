"""The built-in trading rule pack: the rules every trading operator wants on day one.

Installed at migrate time, once per rule: a rule already installed is never written
again, so thresholds edited in the admin (or rules deleted there) stay as the operator
left them. Metric names are those the ingestion stores (derived trading metrics in
`metrics.trading`) or that trading systems report (documented in the README).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings

from metrics import signals

PACK = "trading"

WARNING, ERROR, CRITICAL, EMERGENCY, INFO = 30, 40, 50, 60, 20
DAY = timedelta(days=1)


@dataclass(frozen=True)
class PackRule:
    key: str
    name: str
    kind: str
    metric: str
    thresholds: tuple[tuple[int, str, float, float | None], ...]
    description: str
    aggregation: str = "last"
    window: timedelta = DAY
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # A threshold's trading action by severity: installed with the rule's
    # `trading_actions` off, so it only acts once someone switches it on.
    actions: dict[int, str] = field(default_factory=dict)


# The pack's trading actions (by rule key and severity), for installs made before them too.
PACK_ACTIONS: dict[str, dict[int, str]] = {
    "drawdown": {EMERGENCY: "halt"},
    "daily_loss": {CRITICAL: "reduce_only"},
}


def pack_rules() -> list[PackRule]:
    """The pack, with limits that depend on settings read now."""
    daily_loss = float(settings.TRADEWATCH_DAILY_LOSS_LIMIT)
    max_positions = float(settings.TRADEWATCH_MAX_OPEN_POSITIONS)
    kill_switch = {"inhibited_by": "kill_switch"}
    return [
        PackRule(
            "drawdown", "Drawdown", "threshold", "drawdown_pct",
            ((WARNING, ">", 10, 8), (EMERGENCY, ">", 20, 18)),
            "Drawdown from the equity peak.",
            message="{source}: drawdown {value:.1f} % (limit {threshold:g} %)", extra=kill_switch,
            actions=PACK_ACTIONS["drawdown"],
        ),
        PackRule(
            "daily_drawdown", "Daily drawdown", "threshold", "daily_drawdown_pct",
            ((WARNING, ">", 5, 4),), "Drawdown from today's (UTC) equity peak.",
            message="{source}: daily drawdown {value:.1f} %", extra=kill_switch,
        ),
        PackRule(
            "weekly_drawdown", "Weekly drawdown", "threshold", "weekly_drawdown_pct",
            ((ERROR, ">", 10, 8),), "Drawdown from this ISO week's equity peak.",
            message="{source}: weekly drawdown {value:.1f} %", extra=kill_switch,
        ),
        PackRule(
            "daily_loss", "Daily loss limit", "threshold", "daily_pnl",
            ((CRITICAL, "<", -daily_loss, None),),
            "Net PnL of the UTC day past the configured loss limit.",
            message="{source}: daily PnL {value:.2f} past the limit {threshold:g}",
            extra=kill_switch, actions=PACK_ACTIONS["daily_loss"],
        ),
        PackRule(
            "win_rate", "Low win rate", "threshold", "win_rate_pct",
            ((WARNING, "<", 40, 45),), "Win rate under 40 % once there are 10 trades.",
            message="{source}: win rate {value:.1f} %",
            extra={"guard_metric": "trade_count", "guard_minimum": 10},
        ),
        PackRule(
            "error_rate", "High error rate", "threshold", "error_rate_pct",
            ((WARNING, ">", 10, 8),), "Errors per trading cycle, as reported by the source.",
            window=timedelta(minutes=15), message="{source}: error rate {value:.1f} % of cycles",
        ),
        PackRule(
            "concentration", "Position concentration", "threshold", "largest_position_pct",
            ((WARNING, ">", 40, 35),), "Largest position's share of equity.",
            message="{source}: largest position {value:.1f} % of equity",
        ),
        PackRule(
            "unusual_trading", "Unusual trading activity", "threshold", "trades_last_5m",
            ((WARNING, ">", 10, None),), "More than 10 trades in 5 minutes.",
            message="{source}: {value:g} trades in 5 minutes",
        ),
        PackRule(
            "losing_streak", "Losing streak", "threshold", "consecutive_losses",
            ((WARNING, ">=", 10, None),), "Ten losing trades in a row.",
            message="{source}: {value:g} losses in a row", extra=kill_switch,
        ),
        PackRule(
            "leverage", "Leverage", "threshold", "leverage",
            ((CRITICAL, ">", 3, 2.8),), "Gross exposure over equity.",
            message="{source}: leverage {value:.2f}x", extra=kill_switch,
        ),
        PackRule(
            "open_positions", "Open positions limit", "threshold", "open_positions",
            ((ERROR, ">", max_positions, None),), "Open positions, as reported by the source.",
            message="{source}: {value:g} open positions (limit {threshold:g})",
        ),
        PackRule(
            "circuit_breaker", "Circuit breaker tripped", "event", "circuit_breaker_tripped",
            ((CRITICAL, ">=", 1, None),), "A circuit breaker tripped in the last 15 minutes.",
            window=timedelta(minutes=15), message="{source}: circuit breaker tripped",
        ),
        PackRule(
            "kill_switch", "Kill switch activated", "event", "kill_switch_activated",
            ((CRITICAL, ">=", 1, None),), "The kill switch was activated in the last 15 minutes.",
            window=timedelta(minutes=15), message="{source}: kill switch activated",
        ),
        PackRule(
            "model_crashed", "Model crashed", "event", "model_crashed",
            ((CRITICAL, ">=", 1, None),), "The model crashed in the last 15 minutes.",
            window=timedelta(minutes=15), message="{source}: model crashed",
        ),
        PackRule(
            "model_recovered", "Model recovered", "event", "model_recovered",
            ((INFO, ">=", 1, None),), "The model recovered in the last 5 minutes.",
            window=timedelta(minutes=5), message="{source}: model recovered",
        ),
        # Tradewatch's own delivery problems, recorded as events of its system source.
        PackRule(
            "notification_failed", "Notifications failing", "event", "notification_failed",
            ((ERROR, ">=", 1, None),),
            "A notification failed for good (after its retries, or refused by the endpoint) "
            "in the last hour; its policy's fallback channel was tried.",
            window=timedelta(hours=1), message="{value:g} notification(s) failed in the last hour",
        ),
        PackRule(
            "channel_disabled", "Notification channel disabled", "event", "channel_disabled",
            ((CRITICAL, ">=", 1, None),),
            "A channel's endpoint answered 410 Gone and the channel was disabled (last 24 h).",
            window=DAY, message="A notification channel was disabled (endpoint gone)",
        ),
        PackRule(
            "heartbeat", "Heartbeat lapsed", "absence", "heartbeat",
            ((CRITICAL, ">", 0, None),),
            "No heartbeat within the source's period plus grace (value: seconds overdue).",
            window=timedelta(minutes=5), message="{source}: no heartbeat, {value:.0f} s overdue",
        ),
        # "Alive but not trading": each signal's value is the seconds past the source's
        # grace for it (its expectation's, or the default), counted only while the
        # expectation's schedule is open; a source that never reported the signal has
        # no data, so the rule stays silent for it (missing data: keep).
        PackRule(
            "no_decisions", "No decisions", "absence", signals.rule_metric(signals.DECISION),
            ((WARNING, ">", 0, None),),
            "Alive but not deciding: no `decision` event within the source's grace (30 min "
            "unless its expectation says otherwise) while its schedule is open. Silent for a "
            "source that never reported a decision. Value: seconds overdue.",
            window=timedelta(minutes=5),
            message="{source}: no decision within its grace ({value:.0f} s overdue)",
            extra={"inhibited_by": "heartbeat"},
        ),
        PackRule(
            "no_orders", "No orders", "absence", signals.rule_metric(signals.ORDER),
            ((WARNING, ">", 0, None),),
            "Alive but not ordering: no `order_submitted` event nor trade within the "
            "source's grace (1 h unless its expectation says otherwise) while its schedule "
            "is open. Silent for a source that never reported an order. Value: seconds overdue.",
            window=timedelta(minutes=5),
            message="{source}: no order within its grace ({value:.0f} s overdue)",
            extra={"inhibited_by": "heartbeat"},
        ),
        PackRule(
            "no_market_data", "No market data", "absence", signals.rule_metric(signals.MARKET_DATA),
            ((ERROR, ">", 0, None),),
            "Trading blind: no `market_data` event, and no tick by `market_data_age_ms`, "
            "within the source's grace (5 min unless its expectation says otherwise) while "
            "its schedule is open. Silent for a source that never reported market data. "
            "Value: seconds overdue.",
            window=timedelta(minutes=5),
            message="{source}: no market data within its grace ({value:.0f} s overdue)",
            extra={"inhibited_by": "heartbeat"},
        ),
        PackRule(
            "order_rejects", "Order reject rate", "threshold",
            signals.rule_metric(signals.ORDER_REJECTS), ((WARNING, ">", 20, 15),),
            "`order_rejected` events over submitted orders within the source's window (15 "
            "min unless its expectation says otherwise), judged from 10 orders on.",
            window=timedelta(minutes=15),
            message="{source}: {value:.0f} % of orders rejected",
            extra={"min_samples": 10, "inhibited_by": "heartbeat"},
        ),
        PackRule(
            "artifact_stale", "Model artifact stale", "absence", "event:artifact_updated",
            ((WARNING, ">", 24 * 3600, None),), "No artifact_updated event for 24 hours.",
            window=timedelta(minutes=5),
            message="{source}: model artifact not updated for {value:.0f} s",
            extra={"inhibited_by": "heartbeat"},
        ),
        PackRule(
            "provider_failures", "Provider failures", "event", "provider_failure",
            ((WARNING, ">", 5, None),), "More than 5 provider / sentiment failures in an hour.",
            window=timedelta(hours=1), message="{source}: {value:g} provider failures in an hour",
        ),
        PackRule(
            "connectivity_lost", "Exchange connectivity lost", "event", "connectivity_lost",
            ((ERROR, ">=", 1, None),), "The exchange connection was lost in the last 15 minutes.",
            window=timedelta(minutes=15), message="{source}: exchange connectivity lost",
        ),
        PackRule(
            "exchange_latency", "Exchange latency p99", "threshold", "exchange_latency_ms",
            ((WARNING, ">", 5000, 4000),), "p99 of exchange round trips over 5 minutes.",
            aggregation="p99", window=timedelta(minutes=5),
            message="{source}: exchange p99 latency {value:.0f} ms",
        ),
        PackRule(
            "rate_limit", "API rate limit nearly used up", "threshold", "rate_limit_remaining",
            ((WARNING, "<", 10, 20),), "Requests left in the exchange's rate-limit window.",
            window=timedelta(minutes=5), message="{source}: {value:g} API requests left",
        ),
        *[
            PackRule(
                f"host_{resource}", f"Host {resource} usage", "threshold", f"host_{resource}_pct",
                ((WARNING, ">", 90, 85),), f"Host {resource} usage, averaged over 5 minutes.",
                aggregation="avg", window=timedelta(minutes=5),
                message=f"{{source}}: {resource} at {{value:.0f}} %",
            )
            for resource in ("cpu", "memory", "disk")
        ],
    ]  # fmt: skip


def install_trading_pack(**kwargs: Any) -> int:
    """Install the pack's rules that were never installed; return how many (post_migrate)."""
    from django.db import transaction

    from alerts.models import Rule, RulePackInstall, Threshold

    using = kwargs.get("using", "default")
    installed = 0
    for item in pack_rules():
        with transaction.atomic(using=using):
            _, created = RulePackInstall.objects.using(using).get_or_create(pack=PACK, key=item.key)
            if not created or Rule.objects.using(using).filter(name=item.name).exists():
                continue
            rule = Rule.objects.using(using).create(
                name=item.name,
                description=item.description,
                kind=item.kind,
                metric=item.metric,
                aggregation=item.aggregation,
                window=item.window,
                message_template=item.message,
                pack=PACK,
                **item.extra,
            )
            Threshold.objects.using(using).bulk_create(
                Threshold(rule=rule, severity=severity, comparison=comparison, value=value,
                          clear_value=clear, action=item.actions.get(severity, ""))
                for severity, comparison, value, clear in item.thresholds
            )  # fmt: skip
            installed += 1
    return installed
