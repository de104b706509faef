# The audit triggers of the sources table and of the new tables: after the audit tables have the new
# columns (and before them when migrating back), so no trigger ever writes a column that
# is not there.

import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('metrics', '0009_schedules_and_expectations'),
        ('audit', '0008_schedule_history'),
    ]

    operations = [
        pgtrigger.migrations.RemoveTrigger(
            model_name='source',
            name='insert_insert',
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name='source',
            name='update_update',
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name='source',
            name='delete_delete',
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='source',
            trigger=pgtrigger.compiler.Trigger(name='insert_insert', sql=pgtrigger.compiler.UpsertTriggerSql(func='INSERT INTO "audit_sourceevent" ("created_at", "description", "enabled", "heartbeat_grace", "heartbeat_period", "id", "kind", "name", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "schedule_id") VALUES (NEW."created_at", NEW."description", NEW."enabled", NEW."heartbeat_grace", NEW."heartbeat_period", NEW."id", NEW."kind", NEW."name", _pgh_attach_context(), NOW(), \'insert\', NEW."id", NEW."schedule_id"); RETURN NULL;', hash='049af535061737b473212ef11a2a02a33c4bba94', operation='INSERT', pgid='pgtrigger_insert_insert_c799f', table='metrics_source', when='AFTER')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='source',
            trigger=pgtrigger.compiler.Trigger(name='update_update', sql=pgtrigger.compiler.UpsertTriggerSql(condition='WHEN (OLD."created_at" IS DISTINCT FROM (NEW."created_at") OR OLD."description" IS DISTINCT FROM (NEW."description") OR OLD."enabled" IS DISTINCT FROM (NEW."enabled") OR OLD."heartbeat_grace" IS DISTINCT FROM (NEW."heartbeat_grace") OR OLD."heartbeat_period" IS DISTINCT FROM (NEW."heartbeat_period") OR OLD."id" IS DISTINCT FROM (NEW."id") OR OLD."kind" IS DISTINCT FROM (NEW."kind") OR OLD."name" IS DISTINCT FROM (NEW."name") OR OLD."schedule_id" IS DISTINCT FROM (NEW."schedule_id"))', func='INSERT INTO "audit_sourceevent" ("created_at", "description", "enabled", "heartbeat_grace", "heartbeat_period", "id", "kind", "name", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "schedule_id") VALUES (NEW."created_at", NEW."description", NEW."enabled", NEW."heartbeat_grace", NEW."heartbeat_period", NEW."id", NEW."kind", NEW."name", _pgh_attach_context(), NOW(), \'update\', NEW."id", NEW."schedule_id"); RETURN NULL;', hash='6156fca3af3973a87912a0649366abc9e027bbff', operation='UPDATE', pgid='pgtrigger_update_update_284a7', table='metrics_source', when='AFTER')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='source',
            trigger=pgtrigger.compiler.Trigger(name='delete_delete', sql=pgtrigger.compiler.UpsertTriggerSql(func='INSERT INTO "audit_sourceevent" ("created_at", "description", "enabled", "heartbeat_grace", "heartbeat_period", "id", "kind", "name", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "schedule_id") VALUES (OLD."created_at", OLD."description", OLD."enabled", OLD."heartbeat_grace", OLD."heartbeat_period", OLD."id", OLD."kind", OLD."name", _pgh_attach_context(), NOW(), \'delete\', OLD."id", OLD."schedule_id"); RETURN NULL;', hash='337468a3ff833f29e28135c182ae02319e7addf5', operation='DELETE', pgid='pgtrigger_delete_delete_0ba0e', table='metrics_source', when='AFTER')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='schedule',
            trigger=pgtrigger.compiler.Trigger(name='insert_insert', sql=pgtrigger.compiler.UpsertTriggerSql(func='INSERT INTO "audit_scheduleevent" ("created_at", "description", "exchange", "id", "invert", "kind", "name", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "timezone", "windows") VALUES (NEW."created_at", NEW."description", NEW."exchange", NEW."id", NEW."invert", NEW."kind", NEW."name", _pgh_attach_context(), NOW(), \'insert\', NEW."id", NEW."timezone", NEW."windows"); RETURN NULL;', hash='7d333654883e2ae710cfacbbb95bae8852829503', operation='INSERT', pgid='pgtrigger_insert_insert_c87f4', table='metrics_schedule', when='AFTER')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='schedule',
            trigger=pgtrigger.compiler.Trigger(name='update_update', sql=pgtrigger.compiler.UpsertTriggerSql(condition='WHEN (OLD."created_at" IS DISTINCT FROM (NEW."created_at") OR OLD."description" IS DISTINCT FROM (NEW."description") OR OLD."exchange" IS DISTINCT FROM (NEW."exchange") OR OLD."id" IS DISTINCT FROM (NEW."id") OR OLD."invert" IS DISTINCT FROM (NEW."invert") OR OLD."kind" IS DISTINCT FROM (NEW."kind") OR OLD."name" IS DISTINCT FROM (NEW."name") OR OLD."timezone" IS DISTINCT FROM (NEW."timezone") OR OLD."windows" IS DISTINCT FROM (NEW."windows"))', func='INSERT INTO "audit_scheduleevent" ("created_at", "description", "exchange", "id", "invert", "kind", "name", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "timezone", "windows") VALUES (NEW."created_at", NEW."description", NEW."exchange", NEW."id", NEW."invert", NEW."kind", NEW."name", _pgh_attach_context(), NOW(), \'update\', NEW."id", NEW."timezone", NEW."windows"); RETURN NULL;', hash='fbecc3ea62f5b862dcb57d2b65717b1b3a9b8269', operation='UPDATE', pgid='pgtrigger_update_update_d7412', table='metrics_schedule', when='AFTER')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='schedule',
            trigger=pgtrigger.compiler.Trigger(name='delete_delete', sql=pgtrigger.compiler.UpsertTriggerSql(func='INSERT INTO "audit_scheduleevent" ("created_at", "description", "exchange", "id", "invert", "kind", "name", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "timezone", "windows") VALUES (OLD."created_at", OLD."description", OLD."exchange", OLD."id", OLD."invert", OLD."kind", OLD."name", _pgh_attach_context(), NOW(), \'delete\', OLD."id", OLD."timezone", OLD."windows"); RETURN NULL;', hash='d6c6d31ea19321bcfe1b5527b93eb271006ce58b', operation='DELETE', pgid='pgtrigger_delete_delete_ee7a4', table='metrics_schedule', when='AFTER')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='expectation',
            trigger=pgtrigger.compiler.Trigger(name='insert_insert', sql=pgtrigger.compiler.UpsertTriggerSql(func='INSERT INTO "audit_expectationevent" ("enabled", "grace", "id", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "schedule_id", "signal", "source_id") VALUES (NEW."enabled", NEW."grace", NEW."id", _pgh_attach_context(), NOW(), \'insert\', NEW."id", NEW."schedule_id", NEW."signal", NEW."source_id"); RETURN NULL;', hash='d313dfe4458378927e9109ab83478e2de3a01da4', operation='INSERT', pgid='pgtrigger_insert_insert_bad58', table='metrics_expectation', when='AFTER')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='expectation',
            trigger=pgtrigger.compiler.Trigger(name='update_update', sql=pgtrigger.compiler.UpsertTriggerSql(condition='WHEN (OLD.* IS DISTINCT FROM NEW.*)', func='INSERT INTO "audit_expectationevent" ("enabled", "grace", "id", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "schedule_id", "signal", "source_id") VALUES (NEW."enabled", NEW."grace", NEW."id", _pgh_attach_context(), NOW(), \'update\', NEW."id", NEW."schedule_id", NEW."signal", NEW."source_id"); RETURN NULL;', hash='39b0c005a7d0b66f6deecd5d81f5d002339a27d7', operation='UPDATE', pgid='pgtrigger_update_update_db20f', table='metrics_expectation', when='AFTER')),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name='expectation',
            trigger=pgtrigger.compiler.Trigger(name='delete_delete', sql=pgtrigger.compiler.UpsertTriggerSql(func='INSERT INTO "audit_expectationevent" ("enabled", "grace", "id", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "schedule_id", "signal", "source_id") VALUES (OLD."enabled", OLD."grace", OLD."id", _pgh_attach_context(), NOW(), \'delete\', OLD."id", OLD."schedule_id", OLD."signal", OLD."source_id"); RETURN NULL;', hash='7c3d6f8db9e2ffa604d705ffc7b79d2e88369710', operation='DELETE', pgid='pgtrigger_delete_delete_d449a', table='metrics_expectation', when='AFTER')),
        ),
    ]
