/*
 * hooks.c: the C trampolines of tenant_guard's executor and utility hooks.
 *
 * Each hook calls into Rust (hooks.rs) for its decisions, and calls the previous hook or the
 * standard function from C, inside PG_TRY/PG_FINALLY where Rust state must be restored. An
 * error raised by PostgreSQL below a hook therefore passes through C frames only and keeps all
 * its fields (constraint, table, CONTEXT, ...). Rust code never calls back into the executor.
 *
 * PostgreSQL 15 signatures.
 */
#include "postgres.h"

#include "catalog/objectaccess.h"
#include "catalog/pg_class.h"
#include "catalog/dependency.h"
#include "executor/executor.h"
/*
 * libpq-be.h wants <gssapi/gssapi.h> when the server was built with GSSAPI; we only read
 * Port.remote_host, which comes before the GSS members (a pointer either way), so build
 * without it rather than require the Kerberos headers.
 */
#undef ENABLE_GSS
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "tcop/dest.h"
#include "tcop/utility.h"

/* hooks.rs; all are #[pg_guard]: they may raise errors, they never call the executor */
extern void tenant_guard_executor_start_enter(QueryDesc *query_desc, int eflags);
extern void tenant_guard_executor_start_leave(void);
extern void tenant_guard_executor_start_done(QueryDesc *query_desc, int eflags);
extern bool tenant_guard_check_range_table(List *range_table, bool ereport_on_violation);
extern uint64 tenant_guard_executor_run_cap(QueryDesc *query_desc, uint64 *already_sent);
extern void tenant_guard_executor_run_done(QueryDesc *query_desc, uint64 rows);
extern void tenant_guard_executor_run_failed(QueryDesc *query_desc);
extern void tenant_guard_run_depth(int delta);
extern void tenant_guard_row_cap_exceeded(QueryDesc *query_desc, uint64 cap, uint64 sent);
extern void tenant_guard_executor_end(QueryDesc *query_desc);
extern void tenant_guard_utility_enter(PlannedStmt *pstmt);
extern void tenant_guard_utility_leave(QueryCompletion *qc);
extern void tenant_guard_object_access(bool truncate, Oid relid, int sub_id, bool internal);

static ExecutorStart_hook_type prev_executor_start = NULL;
static ExecutorRun_hook_type prev_executor_run = NULL;
static ExecutorEnd_hook_type prev_executor_end = NULL;
static ExecutorCheckPerms_hook_type prev_check_perms = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;
static object_access_hook_type prev_object_access = NULL;
static emit_log_hook_type prev_emit_log = NULL;

/*
 * emit_log_hook: PostgreSQL logs "parameter X changed to VALUE" when the configuration is
 * reloaded; for tenant_guard.token_keys that would write the signing keys into the server log.
 */
static void
tg_emit_log(ErrorData *edata)
{
	if (edata->message != NULL &&
		strstr(edata->message, "\"tenant_guard.token_keys\"") != NULL &&
		strstr(edata->message, " changed to ") != NULL)
		edata->message = pstrdup("parameter \"tenant_guard.token_keys\" changed (value not logged)");
	if (prev_emit_log)
		prev_emit_log(edata);
}

/*
 * ExecutorStart: once per query, before execution (also for plain EXPLAIN). The range-table
 * check itself runs inside, from ExecutorCheckPerms.
 */
static void
tg_executor_start(QueryDesc *query_desc, int eflags)
{
	tenant_guard_executor_start_enter(query_desc, eflags);
	PG_TRY();
	{
		if (prev_executor_start)
			prev_executor_start(query_desc, eflags);
		else
			standard_ExecutorStart(query_desc, eflags);
	}
	PG_FINALLY();
	{
		tenant_guard_executor_start_leave();
	}
	PG_END_TRY();
	tenant_guard_executor_start_done(query_desc, eflags);
}

/*
 * ExecutorCheckPerms: after the standard ACL checks of every range-table entry (every query,
 * COPY of a table, the foreign-key initial check); its result is final.
 */
static bool
tg_check_perms(List *range_table, bool ereport_on_violation)
{
	if (prev_check_perms && !prev_check_perms(range_table, ereport_on_violation))
		return false;
	return tenant_guard_check_range_table(range_table, ereport_on_violation);
}

/* The row cap: a DestReceiver in front of the query's own. */
typedef struct CapReceiver
{
	DestReceiver pub;
	DestReceiver *inner;
	QueryDesc  *query_desc;
	uint64		cap;
	uint64		already_sent;	/* by earlier ExecutorRun calls (FETCHes) of this query */
} CapReceiver;

static bool
cap_receive(TupleTableSlot *slot, DestReceiver *self)
{
	CapReceiver *r = (CapReceiver *) self;

	/* es_processed counts this ExecutorRun call only (PostgreSQL 15 resets it per FETCH) */
	uint64		sent = r->already_sent +
		(r->query_desc->estate ? r->query_desc->estate->es_processed : 0);

	if (sent >= r->cap)
		tenant_guard_row_cap_exceeded(r->query_desc, r->cap, sent);
	return r->inner->receiveSlot(slot, r->inner);
}

static void
cap_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	CapReceiver *r = (CapReceiver *) self;

	r->inner->rStartup(r->inner, operation, typeinfo);
}

static void
cap_shutdown(DestReceiver *self)
{
	CapReceiver *r = (CapReceiver *) self;

	r->inner->rShutdown(r->inner);
}

static void
cap_destroy(DestReceiver *self)
{
	/* the inner receiver belongs to its creator; ours goes with its memory context */
}

/*
 * ExecutorRun: produces rows (once per statement, once per FETCH). Rust checks that the claim
 * still matches the one the query was admitted under, and says whether a row cap applies and
 * how many rows earlier FETCHes sent; afterwards it adds this call's rows to the total.
 */
static void
tg_executor_run(QueryDesc *query_desc, ScanDirection direction, uint64 count, bool execute_once)
{
	uint64		already_sent = 0;
	uint64		cap = tenant_guard_executor_run_cap(query_desc, &already_sent);
	DestReceiver *volatile original = query_desc->dest;

	if (cap > 0)
	{
		CapReceiver *r = (CapReceiver *) palloc0(sizeof(CapReceiver));

		r->pub.receiveSlot = cap_receive;
		r->pub.rStartup = cap_startup;
		r->pub.rShutdown = cap_shutdown;
		r->pub.rDestroy = cap_destroy;
		r->pub.mydest = original->mydest;
		r->inner = original;
		r->query_desc = query_desc;
		r->cap = cap;
		r->already_sent = already_sent;
		query_desc->dest = (DestReceiver *) r;
	}
	tenant_guard_run_depth(1);
	PG_TRY();
	{
		if (prev_executor_run)
			prev_executor_run(query_desc, direction, count, execute_once);
		else
			standard_ExecutorRun(query_desc, direction, count, execute_once);
	}
	PG_CATCH();
	{
		query_desc->dest = original;
		tenant_guard_run_depth(-1);
		/* a statement under a bypass is audited even when it fails */
		tenant_guard_executor_run_failed(query_desc);
		PG_RE_THROW();
	}
	PG_END_TRY();
	query_desc->dest = original;
	tenant_guard_run_depth(-1);
	if (query_desc->estate)
		tenant_guard_executor_run_done(query_desc, query_desc->estate->es_processed);
}

/* ExecutorEnd: once when a query completes normally (not on error). */
static void
tg_executor_end(QueryDesc *query_desc)
{
	tenant_guard_executor_end(query_desc);
	if (prev_executor_end)
		prev_executor_end(query_desc);
	else
		standard_ExecutorEnd(query_desc);
}

/* ProcessUtility: every utility statement, at any nesting level. */
static void
tg_process_utility(PlannedStmt *pstmt, const char *query_string, bool read_only_tree,
				   ProcessUtilityContext context, ParamListInfo params,
				   QueryEnvironment *query_env, DestReceiver *dest, QueryCompletion *qc)
{
	tenant_guard_utility_enter(pstmt);
	PG_TRY();
	{
		if (prev_process_utility)
			prev_process_utility(pstmt, query_string, read_only_tree, context, params,
								 query_env, dest, qc);
		else
			standard_ProcessUtility(pstmt, query_string, read_only_tree, context, params,
									query_env, dest, qc);
	}
	PG_CATCH();
	{
		tenant_guard_utility_leave(NULL);
		PG_RE_THROW();
	}
	PG_END_TRY();
	tenant_guard_utility_leave(qc);
}

/*
 * object_access_hook: every DROP and TRUNCATE of a relation, by whatever route (CASCADE,
 * DROP SCHEMA, DROP OWNED, partitions). Rust refuses what would remove a protected table.
 */
static void
tg_object_access(ObjectAccessType access, Oid class_id, Oid object_id, int sub_id, void *arg)
{
	if (prev_object_access)
		prev_object_access(access, class_id, object_id, sub_id, arg);
	if (class_id != RelationRelationId)
		return;
	if (access == OAT_TRUNCATE)
		tenant_guard_object_access(true, object_id, sub_id, false);
	else if (access == OAT_DROP)
	{
		ObjectAccessDrop *drop = (ObjectAccessDrop *) arg;

		tenant_guard_object_access(false, object_id, sub_id,
								   drop && (drop->dropflags & PERFORM_DELETION_INTERNAL) != 0);
	}
}

/* Called once from _PG_init under shared_preload_libraries. */
void
tenant_guard_install_hooks(void)
{
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = tg_executor_start;
	prev_executor_run = ExecutorRun_hook;
	ExecutorRun_hook = tg_executor_run;
	prev_executor_end = ExecutorEnd_hook;
	ExecutorEnd_hook = tg_executor_end;
	prev_check_perms = ExecutorCheckPerms_hook;
	ExecutorCheckPerms_hook = tg_check_perms;
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = tg_process_utility;
	prev_object_access = object_access_hook;
	object_access_hook = tg_object_access;
	prev_emit_log = emit_log_hook;
	emit_log_hook = tg_emit_log;
}

/* The client's address as the server saw it ("" for none); no SQL, usable anywhere. */
const char *
tenant_guard_client_addr(void)
{
	if (MyProcPort == NULL || MyProcPort->remote_host == NULL)
		return "";
	return MyProcPort->remote_host;
}

/*
 * One audit event's line in the server log, as cheaply as PostgreSQL allows: no translation
 * lookup, and no STATEMENT or CONTEXT lines (the line carries the query itself).
 */
void
tenant_guard_log_event(const char *line)
{
	ereport(LOG,
			(errmsg_internal("tenant_guard: %s", line),
			 errhidestmt(true),
			 errhidecontext(true)));
}
