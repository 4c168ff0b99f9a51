-- S3 anchor: the SQL pesarail.ledger.services.transfer() issues (captured from the ORM),
-- run by pgbench. {src_n}/{dst_n} are filled in by bench/scenarios/s3.py.
\set k random(1, 1000000000000000)
\set a random(1, :naccounts)
\set b (:a + random(1, :naccounts - 1) - 1) % :naccounts + 1
\set flip random(0, 1)
SELECT id AS src FROM bench_s3_accounts WHERE n = {src_n} \gset
SELECT id AS dst FROM bench_s3_accounts WHERE n = {dst_n} \gset
SELECT id FROM ledger_journalentry WHERE idempotency_key = 'pgb:' || :client_id || ':' || :k ORDER BY id DESC LIMIT 1;
BEGIN;
SAVEPOINT s1;
INSERT INTO ledger_journalentry (id, merchant_id, kind, currency, idempotency_key, cause_type, cause_id, memo, reverses_id, created_at) VALUES ('je_pgb' || :client_id || '_' || :k, ':merchant', 'transfer', 'KES', 'pgb:' || :client_id || ':' || :k, 'transfer', '', '', NULL, now());
RELEASE SAVEPOINT s1;
SELECT created_at, updated_at, id, kind, merchant_id, customer_id, provider_account_id, currency, allow_negative, balance, held, version FROM ledger_account WHERE id IN (':src', ':dst') ORDER BY id FOR UPDATE;
INSERT INTO ledger_posting (id, entry_id, account_id, currency, amount, balance_after, sequence, created_at) SELECT 'pst_pgb' || :client_id || '_' || :k || CASE WHEN id = ':src' THEN 'a' ELSE 'b' END, 'je_pgb' || :client_id || '_' || :k, id, 'KES', CASE WHEN id = ':src' THEN -100 ELSE 100 END, balance + CASE WHEN id = ':src' THEN -100 ELSE 100 END, version + 1, now() FROM ledger_account WHERE id IN (':src', ':dst');
UPDATE ledger_account SET balance = balance - 100, held = held, version = version + 1, updated_at = now() WHERE id = ':src';
UPDATE ledger_account SET balance = balance + 100, held = held, version = version + 1, updated_at = now() WHERE id = ':dst';
COMMIT;
