# The audit triggers of the rules and silences tables: after the audit tables have the new
# columns (and before them when migrating back), so no trigger ever writes a column that
# is not there.

import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('alerts', '0009_rule_and_silence_schedules'),
        ('audit', '0008_schedule_history'),
    ]

    operations = [
        pgtrigger.migrations.RemoveTrigger(
            model_name='rule',
            name='insert_insert',
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name='rule',
            name='update_update',
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name='rule',
            name='delete_delete',
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name='silence',
            name='insert_insert',
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name='silence',
            name='update_update',
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name='silence',
            name='delete_delete',
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='rule',
            trigger=pgtrigger.compiler.Trigger(name='insert_insert', sql=pgtrigger.compiler.UpsertTriggerSql(func='INSERT INTO "audit_ruleevent" ("aggregation", "change_percent", "created_at", "description", "enabled", "for_duration", "guard_metric", "guard_minimum", "id", "inhibited_by", "keep_firing_for", "kind", "labels", "m_of_n_m", "m_of_n_n", "message_template", "metric", "min_samples", "missing_data", "name", "pack", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "schedule_id", "scope", "source_id", "tag_id", "trading_actions", "window") VALUES (NEW."aggregation", NEW."change_percent", NEW."created_at", NEW."description", NEW."enabled", NEW."for_duration", NEW."guard_metric", NEW."guard_minimum", NEW."id", NEW."inhibited_by", NEW."keep_firing_for", NEW."kind", NEW."labels", NEW."m_of_n_m", NEW."m_of_n_n", NEW."message_template", NEW."metric", NEW."min_samples", NEW."missing_data", NEW."name", NEW."pack", _pgh_attach_context(), NOW(), \'insert\', NEW."id", NEW."schedule_id", NEW."scope", NEW."source_id", NEW."tag_id", NEW."trading_actions", NEW."window"); RETURN NULL;', hash='6bc4524cd192b61ca91ca1e047f32d96f766fb1e', operation='INSERT', pgid='pgtrigger_insert_insert_2657b', table='alerts_rule', when='AFTER')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='rule',
            trigger=pgtrigger.compiler.Trigger(name='update_update', sql=pgtrigger.compiler.UpsertTriggerSql(condition='WHEN (OLD."aggregation" IS DISTINCT FROM (NEW."aggregation") OR OLD."change_percent" IS DISTINCT FROM (NEW."change_percent") OR OLD."created_at" IS DISTINCT FROM (NEW."created_at") OR OLD."description" IS DISTINCT FROM (NEW."description") OR OLD."enabled" IS DISTINCT FROM (NEW."enabled") OR OLD."for_duration" IS DISTINCT FROM (NEW."for_duration") OR OLD."guard_metric" IS DISTINCT FROM (NEW."guard_metric") OR OLD."guard_minimum" IS DISTINCT FROM (NEW."guard_minimum") OR OLD."id" IS DISTINCT FROM (NEW."id") OR OLD."inhibited_by" IS DISTINCT FROM (NEW."inhibited_by") OR OLD."keep_firing_for" IS DISTINCT FROM (NEW."keep_firing_for") OR OLD."kind" IS DISTINCT FROM (NEW."kind") OR OLD."labels" IS DISTINCT FROM (NEW."labels") OR OLD."m_of_n_m" IS DISTINCT FROM (NEW."m_of_n_m") OR OLD."m_of_n_n" IS DISTINCT FROM (NEW."m_of_n_n") OR OLD."message_template" IS DISTINCT FROM (NEW."message_template") OR OLD."metric" IS DISTINCT FROM (NEW."metric") OR OLD."min_samples" IS DISTINCT FROM (NEW."min_samples") OR OLD."missing_data" IS DISTINCT FROM (NEW."missing_data") OR OLD."name" IS DISTINCT FROM (NEW."name") OR OLD."pack" IS DISTINCT FROM (NEW."pack") OR OLD."schedule_id" IS DISTINCT FROM (NEW."schedule_id") OR OLD."scope" IS DISTINCT FROM (NEW."scope") OR OLD."source_id" IS DISTINCT FROM (NEW."source_id") OR OLD."tag_id" IS DISTINCT FROM (NEW."tag_id") OR OLD."trading_actions" IS DISTINCT FROM (NEW."trading_actions") OR OLD."window" IS DISTINCT FROM (NEW."window"))', func='INSERT INTO "audit_ruleevent" ("aggregation", "change_percent", "created_at", "description", "enabled", "for_duration", "guard_metric", "guard_minimum", "id", "inhibited_by", "keep_firing_for", "kind", "labels", "m_of_n_m", "m_of_n_n", "message_template", "metric", "min_samples", "missing_data", "name", "pack", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "schedule_id", "scope", "source_id", "tag_id", "trading_actions", "window") VALUES (NEW."aggregation", NEW."change_percent", NEW."created_at", NEW."description", NEW."enabled", NEW."for_duration", NEW."guard_metric", NEW."guard_minimum", NEW."id", NEW."inhibited_by", NEW."keep_firing_for", NEW."kind", NEW."labels", NEW."m_of_n_m", NEW."m_of_n_n", NEW."message_template", NEW."metric", NEW."min_samples", NEW."missing_data", NEW."name", NEW."pack", _pgh_attach_context(), NOW(), \'update\', NEW."id", NEW."schedule_id", NEW."scope", NEW."source_id", NEW."tag_id", NEW."trading_actions", NEW."window"); RETURN NULL;', hash='b3c53973541f37f9fb2698b2c7b9799c73b102fd', operation='UPDATE', pgid='pgtrigger_update_update_3cd3a', table='alerts_rule', when='AFTER')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='rule',
            trigger=pgtrigger.compiler.Trigger(name='delete_delete', sql=pgtrigger.compiler.UpsertTriggerSql(func='INSERT INTO "audit_ruleevent" ("aggregation", "change_percent", "created_at", "description", "enabled", "for_duration", "guard_metric", "guard_minimum", "id", "inhibited_by", "keep_firing_for", "kind", "labels", "m_of_n_m", "m_of_n_n", "message_template", "metric", "min_samples", "missing_data", "name", "pack", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "schedule_id", "scope", "source_id", "tag_id", "trading_actions", "window") VALUES (OLD."aggregation", OLD."change_percent", OLD."created_at", OLD."description", OLD."enabled", OLD."for_duration", OLD."guard_metric", OLD."guard_minimum", OLD."id", OLD."inhibited_by", OLD."keep_firing_for", OLD."kind", OLD."labels", OLD."m_of_n_m", OLD."m_of_n_n", OLD."message_template", OLD."metric", OLD."min_samples", OLD."missing_data", OLD."name", OLD."pack", _pgh_attach_context(), NOW(), \'delete\', OLD."id", OLD."schedule_id", OLD."scope", OLD."source_id", OLD."tag_id", OLD."trading_actions", OLD."window"); RETURN NULL;', hash='18c056977df556a2ca1c68d4e758816278390acf', operation='DELETE', pgid='pgtrigger_delete_delete_52a2a', table='alerts_rule', when='AFTER')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='silence',
            trigger=pgtrigger.compiler.Trigger(name='insert_insert', sql=pgtrigger.compiler.UpsertTriggerSql(func='INSERT INTO "audit_silenceevent" ("alert_id", "created_at", "created_by_id", "ends_at", "expired_at", "id", "min_severity", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "reason", "schedule_id", "starts_at") VALUES (NEW."alert_id", NEW."created_at", NEW."created_by_id", NEW."ends_at", NEW."expired_at", NEW."id", NEW."min_severity", _pgh_attach_context(), NOW(), \'insert\', NEW."id", NEW."reason", NEW."schedule_id", NEW."starts_at"); RETURN NULL;', hash='ceeb340af10acbd55970bf1bc1e360b8030a4ad9', operation='INSERT', pgid='pgtrigger_insert_insert_ca3a5', table='alerts_silence', when='AFTER')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='silence',
            trigger=pgtrigger.compiler.Trigger(name='update_update', sql=pgtrigger.compiler.UpsertTriggerSql(condition='WHEN (OLD.* IS DISTINCT FROM NEW.*)', func='INSERT INTO "audit_silenceevent" ("alert_id", "created_at", "created_by_id", "ends_at", "expired_at", "id", "min_severity", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "reason", "schedule_id", "starts_at") VALUES (NEW."alert_id", NEW."created_at", NEW."created_by_id", NEW."ends_at", NEW."expired_at", NEW."id", NEW."min_severity", _pgh_attach_context(), NOW(), \'update\', NEW."id", NEW."reason", NEW."schedule_id", NEW."starts_at"); RETURN NULL;', hash='f1894519a3f16aef258542ea55c7381c2ce24b56', operation='UPDATE', pgid='pgtrigger_update_update_6f2fa', table='alerts_silence', when='AFTER')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='silence',
            trigger=pgtrigger.compiler.Trigger(name='delete_delete', sql=pgtrigger.compiler.UpsertTriggerSql(func='INSERT INTO "audit_silenceevent" ("alert_id", "created_at", "created_by_id", "ends_at", "expired_at", "id", "min_severity", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "reason", "schedule_id", "starts_at") VALUES (OLD."alert_id", OLD."created_at", OLD."created_by_id", OLD."ends_at", OLD."expired_at", OLD."id", OLD."min_severity", _pgh_attach_context(), NOW(), \'delete\', OLD."id", OLD."reason", OLD."schedule_id", OLD."starts_at"); RETURN NULL;', hash='56e60271be899d256d5d62ad632eed6b34bcfef9', operation='DELETE', pgid='pgtrigger_delete_delete_92eae', table='alerts_silence', when='AFTER')),
        ),
    ]
