// tenant_guard from Prisma ORM 7 (driver adapter @prisma/adapter-pg): the tenant claim is set in
// the same transaction as the queries, with set_config('tenant_guard.tenant_id', $1, true)
// (the SET LOCAL of a function call; Prisma's tagged templates send ${tenant} as a bind
// parameter, never as SQL text).
//
//   DATABASE_URL=postgresql://app@host:5432/db npx prisma generate && npx tsx index.ts
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "./generated/prisma/client";

// max: 1, on purpose: every tenant below runs on the same server connection, one transaction
// after the other, as they would behind a transaction-mode pooler.
const adapter = new PrismaPg({ connectionString: process.env.DATABASE_URL!, max: 1 });
const prisma = new PrismaClient({ adapter });

type Row = [string, number | null];
const rowsOf = (invoices: { tenantId: string; amount: number | null }[]): Row[] =>
  invoices.map((i) => [i.tenantId, i.amount]);

// 1. An interactive transaction: set the claim first, then query through `tx`.
async function invoicesOf(tenantId: string): Promise<Row[]> {
  return prisma.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT set_config('tenant_guard.tenant_id', ${tenantId}, true)`;
    return rowsOf(await tx.invoice.findMany({ orderBy: { id: "asc" } }));
  });
}

// 2. A batch transaction: the claim and the query in one $transaction([...]).
async function invoicesOfBatch(tenantId: string): Promise<Row[]> {
  const [, invoices] = await prisma.$transaction([
    prisma.$executeRaw`SELECT set_config('tenant_guard.tenant_id', ${tenantId}, true)`,
    prisma.invoice.findMany({ orderBy: { id: "asc" } }),
  ]);
  return rowsOf(invoices);
}

// 3. A client extension that wraps every model query in such a transaction, so that code using
//    forTenant(id) cannot forget the claim.
function forTenant(tenantId: string) {
  return prisma.$extends({
    query: {
      $allModels: {
        async $allOperations({ args, query }) {
          const [, result] = await prisma.$transaction([
            prisma.$executeRaw`SELECT set_config('tenant_guard.tenant_id', ${tenantId}, true)`,
            query(args),
          ]);
          return result;
        },
      },
    },
  });
}

// The database's refusal, as Prisma reports it (the driver adapter keeps PostgreSQL's SQLSTATE).
function refusal(err: any): string {
  const cause = err?.meta?.driverAdapterError?.cause;
  const sqlstate = cause?.originalCode ?? cause?.code ?? err?.code;
  const message = cause?.originalMessage ?? cause?.message ?? String(err?.message ?? err);
  return `refused ${sqlstate}: ${message}`;
}

async function attempt(label: string, fn: () => Promise<Row[]>) {
  try {
    console.log(`${label} -> ${JSON.stringify(await fn())}`);
  } catch (err) {
    console.log(`${label} -> ${refusal(err)}`);
  }
}

async function main() {
  for (const tenant of ["acme", "globex"]) {
    await attempt(`${tenant} (interactive)`, () => invoicesOf(tenant));
    await attempt(`${tenant} (batch)`, () => invoicesOfBatch(tenant));
    await attempt(`${tenant} (extension)`, async () =>
      rowsOf(await forTenant(tenant).invoice.findMany({ orderBy: { id: "asc" } })),
    );
  }
  // A write for another tenant is refused by the row policies.
  await attempt("acme writes a globex row", () =>
    prisma.$transaction(async (tx) => {
      await tx.$executeRaw`SELECT set_config('tenant_guard.tenant_id', ${"acme"}, true)`;
      await tx.invoice.create({ data: { tenantId: "globex", amount: 1 } });
      return [];
    }),
  );
  // The careless call: the plain client, no claim. Refused, never "all rows".
  await attempt("forgot the claim", async () => rowsOf(await prisma.invoice.findMany()));
  await prisma.$disconnect();
}

main().catch(async (err) => {
  console.error(err);
  await prisma.$disconnect();
  process.exit(1);
});
