/*
 * audit_store.c: the audit writer's fast path into tenant_guard.audit_log.
 *
 * What COPY does, for one batch of events: form each row, take the id from the table's identity
 * sequence, check the table's constraints, insert the heap tuple and its index entries (partial
 * and BRIN indexes included). No parsing, planning or expression evaluation per batch, which is
 * most of what an INSERT ... SELECT FROM unnest(...) costs per row.
 *
 * It declines (returns TG_STORE_DECLINED, and the writer falls back to that INSERT) whenever the
 * table is not the plain table the extension created: a user-added INSERT trigger or rule (foreign
 * keys and deferrable unique constraints are INSERT triggers too), partitioning (also as a
 * partition), row security, a changed column list. Rust (audit_writer.rs) decides what to
 * store; this file only stores it.
 *
 * PostgreSQL 15 signatures (with the 16+/17+ differences under #if).
 */
#include "postgres.h"

#include <ctype.h>

#include "access/table.h"
#include "access/tableam.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/* A string passed from Rust: not NUL-terminated; len 0 stores NULL. */
typedef struct TgText
{
	const char *ptr;
	int32		len;
} TgText;

/* One event as the writer hands it over (audit_writer.rs builds the same #[repr(C)] layout). */
typedef struct TgAuditRow
{
	int64		at;				/* PostgreSQL timestamp */
	int64		rows;			/* < 0: NULL */
	int32		backend_pid;
	TgText		event;
	TgText		reason;
	TgText		relations;		/* names separated by 0x1f; empty: '{}' */
	TgText		command;
	TgText		tenant;
	TgText		role;
	TgText		session_role;
	TgText		application_name;
	TgText		client_addr;	/* stored only when it looks like an address */
	TgText		query;
} TgAuditRow;

#define TG_STORE_STORED 1
#define TG_STORE_DECLINED 0
#define TG_STORE_NO_TABLE (-1)

#define AUDIT_NATTS 14

/* The columns of sql/audit.sql, in order. */
static const struct
{
	const char *name;
	Oid			type;
}			audit_columns[AUDIT_NATTS] = {
	{"id", INT8OID},
	{"at", TIMESTAMPTZOID},
	{"event", TEXTOID},
	{"reason", TEXTOID},
	{"relations", TEXTARRAYOID},
	{"command", TEXTOID},
	{"rows", INT8OID},
	{"tenant", TEXTOID},
	{"role", TEXTOID},
	{"session_role", TEXTOID},
	{"application_name", TEXTOID},
	{"client_addr", INETOID},
	{"backend_pid", INT4OID},
	{"query", TEXTOID},
};

static bool
plain_audit_table(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	TriggerDesc *trig = rel->trigdesc;

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition ||
		rel->rd_rel->relrowsecurity || rel->rd_rules != NULL || desc->natts != AUDIT_NATTS)
		return false;
	if (trig != NULL &&
		(trig->trig_insert_before_row || trig->trig_insert_after_row ||
		 trig->trig_insert_instead_row || trig->trig_insert_before_statement ||
		 trig->trig_insert_after_statement || trig->trig_insert_new_table))
		return false;
	for (int i = 0; i < AUDIT_NATTS; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->atttypid != audit_columns[i].type ||
			strcmp(NameStr(att->attname), audit_columns[i].name) != 0)
			return false;
	}
	/* id must be the identity column the extension created */
	return TupleDescAttr(desc, 0)->attidentity == ATTRIBUTE_IDENTITY_ALWAYS;
}

static Datum
text_datum(TgText t, bool *isnull)
{
	*isnull = (t.len <= 0 || t.ptr == NULL);
	return *isnull ? (Datum) 0 : PointerGetDatum(cstring_to_text_with_len(t.ptr, t.len));
}

static Datum
relations_datum(TgText t)
{
	Datum	   *elems;
	int			n = 0;
	int			start = 0;

	if (t.len <= 0 || t.ptr == NULL)
		return PointerGetDatum(construct_empty_array(TEXTOID));
	elems = palloc(sizeof(Datum) * (t.len + 1));
	for (int i = 0; i <= t.len; i++)
	{
		if (i == t.len || t.ptr[i] == '\x1f')
		{
			elems[n++] = PointerGetDatum(cstring_to_text_with_len(t.ptr + start, i - start));
			start = i + 1;
		}
	}
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* The client address, when it is one (a Unix-socket client has none: NULL). */
static Datum
inet_datum(TgText t, bool *isnull)
{
	char		buf[64];

	*isnull = true;
	if (t.len <= 0 || t.ptr == NULL || t.len >= (int32) sizeof(buf))
		return (Datum) 0;
	for (int i = 0; i < t.len; i++)
	{
		char		c = t.ptr[i];

		if (!(isxdigit((unsigned char) c) || c == ':' || c == '.'))
			return (Datum) 0;
	}
	memcpy(buf, t.ptr, t.len);
	buf[t.len] = '\0';
	*isnull = false;
	return DirectFunctionCall1(inet_in, CStringGetDatum(buf));
}

/*
 * Stores n events in tenant_guard.audit_log in the current transaction. Returns
 * TG_STORE_STORED, TG_STORE_DECLINED (nothing stored; use SQL) or TG_STORE_NO_TABLE (the
 * extension is not installed in this database).
 */
int
tenant_guard_store_audit_rows(const TgAuditRow *rows, int n)
{
	Oid			nsp = get_namespace_oid("tenant_guard", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("audit_log", nsp) : InvalidOid;
	Relation	rel;
	Oid			seqid;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slot;
	CommandId	cid;
	MemoryContext rowcxt;
	MemoryContext oldcxt;

	if (!OidIsValid(relid))
		return TG_STORE_NO_TABLE;
	rel = table_open(relid, RowExclusiveLock);
	if (!plain_audit_table(rel))
	{
		table_close(rel, RowExclusiveLock);
		return TG_STORE_DECLINED;
	}
#if PG_VERSION_NUM >= 170000
	seqid = getIdentitySequence(rel, 1, true);
#else
	seqid = getIdentitySequence(relid, 1, true);
#endif
	if (!OidIsValid(seqid))
	{
		table_close(rel, RowExclusiveLock);
		return TG_STORE_DECLINED;
	}

	estate = CreateExecutorState();
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 0, NULL, 0);
	ExecOpenIndices(rri, false);
	slot = table_slot_create(rel, NULL);
	cid = GetCurrentCommandId(true);
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "tenant_guard audit row",
								   ALLOCSET_DEFAULT_SIZES);

	for (int i = 0; i < n; i++)
	{
		const TgAuditRow *r = &rows[i];
		Datum	   *values = slot->tts_values;
		bool	   *nulls = slot->tts_isnull;
		List	   *recheck;

		oldcxt = MemoryContextSwitchTo(rowcxt);
		ExecClearTuple(slot);
		values[0] = Int64GetDatum(nextval_internal(seqid, false));
		nulls[0] = false;
		values[1] = TimestampTzGetDatum(r->at);
		nulls[1] = false;
		values[2] = text_datum(r->event, &nulls[2]);
		values[3] = text_datum(r->reason, &nulls[3]);
		values[4] = relations_datum(r->relations);
		nulls[4] = false;
		values[5] = text_datum(r->command, &nulls[5]);
		nulls[6] = r->rows < 0;
		values[6] = nulls[6] ? (Datum) 0 : Int64GetDatum(r->rows);
		values[7] = text_datum(r->tenant, &nulls[7]);
		values[8] = text_datum(r->role, &nulls[8]);
		values[9] = text_datum(r->session_role, &nulls[9]);
		values[10] = text_datum(r->application_name, &nulls[10]);
		values[11] = inet_datum(r->client_addr, &nulls[11]);
		values[12] = Int32GetDatum(r->backend_pid);
		nulls[12] = false;
		values[13] = text_datum(r->query, &nulls[13]);
		ExecStoreVirtualTuple(slot);

		if (rel->rd_att->constr)
			ExecConstraints(rri, slot, estate);
		table_tuple_insert(rel, slot, cid, 0, NULL);
		if (rri->ri_NumIndices > 0)
		{
#if PG_VERSION_NUM >= 160000
			recheck = ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL, false);
#else
			recheck = ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL);
#endif
			list_free(recheck);
		}
		MemoryContextSwitchTo(oldcxt);
		ExecClearTuple(slot);
		ResetPerTupleExprContext(estate);
		MemoryContextReset(rowcxt);
	}

	ExecDropSingleTupleTableSlot(slot);
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	MemoryContextDelete(rowcxt);
	table_close(rel, NoLock);
	return TG_STORE_STORED;
}
